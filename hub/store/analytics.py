"""Analytics over every row in a range, in SQL. Each query reads an index
made for it (see 0002_conversations.sql); nothing is sampled."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

_IN_RANGE = "company_id = $1 AND started_at >= $2 AND started_at < $3"


async def prefer_custom_plans(conn: asyncpg.Connection) -> None:
    """Plan each analytics query for its actual range. A prepared statement's
    generic plan, which PostgreSQL switches to after five runs, cannot see
    how much of the table a range covers, and here it made queries 2-3x
    slower."""
    await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")


async def conversation_counts(
    conn: asyncpg.Connection, company_id: UUID, start: datetime, end: datetime
) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"""SELECT count(*) AS total,
                   count(*) FILTER (WHERE status = 'active') AS active,
                   count(DISTINCT agent_id) AS agents,
                   avg(extract(epoch FROM ended_at - started_at))
                       FILTER (WHERE ended_at IS NOT NULL) AS avg_duration
            FROM conversations WHERE {_IN_RANGE}""",
        company_id,
        start,
        end,
    )
    return dict(row)


async def response_time(
    conn: asyncpg.Connection, company_id: UUID, start: datetime, end: datetime
) -> float | None:
    return await conn.fetchval(
        """SELECT avg(response_ms) FROM messages
           WHERE company_id = $1 AND sender_type = 'agent'
             AND created_at >= $2 AND created_at < $3 AND response_ms IS NOT NULL""",
        company_id,
        start,
        end,
    )


async def satisfaction(
    conn: asyncpg.Connection, company_id: UUID, start: datetime, end: datetime
) -> float | None:
    return await conn.fetchval(
        """SELECT avg(r.rating)::float FROM conversation_ratings r
           JOIN conversations c ON c.id = r.conversation_id
           WHERE c.company_id = $1 AND c.started_at >= $2 AND c.started_at < $3""",
        company_id,
        start,
        end,
    )


async def timeline(
    conn: asyncpg.Connection,
    company_id: UUID,
    start: datetime,
    end: datetime,
    unit: str,
    tz: str,
) -> list[dict[str, Any]]:
    """Conversations started per day/week/month in `tz`, every bucket present."""
    rows = await conn.fetch(
        f"""WITH counts AS (
                SELECT date_trunc($4, started_at AT TIME ZONE $5) AS bucket, count(*) AS n
                FROM conversations WHERE {_IN_RANGE} GROUP BY 1
            )
            SELECT b.bucket::date AS date, coalesce(counts.n, 0) AS count
            FROM generate_series(
                date_trunc($4, $2 AT TIME ZONE $5),
                date_trunc($4, ($3 - interval '1 microsecond') AT TIME ZONE $5),
                ('1 ' || $4)::interval
            ) AS b(bucket)
            LEFT JOIN counts USING (bucket)
            ORDER BY b.bucket""",
        company_id,
        start,
        end,
        unit,
        tz,
    )
    return [dict(r) for r in rows]


async def _conversations_by(
    conn: asyncpg.Connection, column: str, company_id: UUID, start: datetime, end: datetime
) -> dict[Any, int]:
    """Conversations started in the range, counted per value of `column` (ours, not a client's)."""
    rows = await conn.fetch(
        f"SELECT {column} AS value, count(*) AS n FROM conversations"
        f" WHERE {_IN_RANGE} GROUP BY {column}",
        company_id,
        start,
        end,
    )
    return {r["value"]: r["n"] for r in rows}


async def by_channel(
    conn: asyncpg.Connection, company_id: UUID, start: datetime, end: datetime
) -> dict[str, int]:
    return await _conversations_by(conn, "channel", company_id, start, end)


async def token_usage(
    conn: asyncpg.Connection, company_id: UUID, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Tokens per (agent, model): the agent's replies, then what it spent
    besides (rolling summaries, `model_usage`). One (agent, model) may come
    twice; callers add them up."""
    rows = await conn.fetch(
        """SELECT sender_id AS agent_id, model,
                  coalesce(sum(prompt_tokens), 0) AS prompt_tokens,
                  coalesce(sum(completion_tokens), 0) AS completion_tokens
           FROM messages
           WHERE company_id = $1 AND sender_type = 'agent'
             AND created_at >= $2 AND created_at < $3
             AND (prompt_tokens IS NOT NULL OR completion_tokens IS NOT NULL)
           GROUP BY sender_id, model
           UNION ALL
           SELECT agent_id, model, sum(prompt_tokens), sum(completion_tokens)
           FROM model_usage
           WHERE company_id = $1 AND created_at >= $2 AND created_at < $3
           GROUP BY agent_id, model""",
        company_id,
        start,
        end,
    )
    return [dict(r) for r in rows]


async def conversations_per_agent(
    conn: asyncpg.Connection, company_id: UUID, start: datetime, end: datetime
) -> dict[UUID, int]:
    return await _conversations_by(conn, "agent_id", company_id, start, end)


async def response_time_per_agent(
    conn: asyncpg.Connection, company_id: UUID, start: datetime, end: datetime
) -> dict[UUID, float]:
    rows = await conn.fetch(
        """SELECT sender_id, avg(response_ms) AS ms FROM messages
           WHERE company_id = $1 AND sender_type = 'agent'
             AND created_at >= $2 AND created_at < $3 AND response_ms IS NOT NULL
           GROUP BY sender_id""",
        company_id,
        start,
        end,
    )
    return {r["sender_id"]: r["ms"] for r in rows}


async def satisfaction_per_agent(
    conn: asyncpg.Connection, company_id: UUID, start: datetime, end: datetime
) -> dict[UUID, float]:
    rows = await conn.fetch(
        """SELECT c.agent_id, avg(r.rating)::float AS rating
           FROM conversation_ratings r JOIN conversations c ON c.id = r.conversation_id
           WHERE c.company_id = $1 AND c.started_at >= $2 AND c.started_at < $3
           GROUP BY c.agent_id""",
        company_id,
        start,
        end,
    )
    return {r["agent_id"]: r["rating"] for r in rows}


async def agent_names(conn: asyncpg.Connection, company_id: UUID) -> dict[UUID, str]:
    rows = await conn.fetch("SELECT id, name FROM agents WHERE company_id = $1", company_id)
    return {r["id"]: r["name"] for r in rows}


_LATENCY = "(ai_metadata->'latency')"
# ai_metadata.latency keys of a voice reply, as analytics names them.
VOICE_LATENCY = {
    "transcript": "transcript_ms",
    "firstToken": "first_token_ms",
    "firstAudio": "first_audio_ms",
    "total": "total_ms",
}


async def voice_turns(
    conn: asyncpg.Connection, company_id: UUID, start: datetime, end: datetime
) -> dict[str, Any]:
    """Voice replies in the range: how many, how many were cut short, how many
    went without passages, and each latency stage's mean, median and p95."""
    stages = ",\n".join(
        f"""avg(({_LATENCY}->>'{key}')::float) AS "{name}_avg",
            percentile_cont(0.5) WITHIN GROUP (ORDER BY ({_LATENCY}->>'{key}')::float)
                AS "{name}_p50",
            percentile_cont(0.95) WITHIN GROUP (ORDER BY ({_LATENCY}->>'{key}')::float)
                AS "{name}_p95\""""
        for name, key in VOICE_LATENCY.items()
    )
    row = await conn.fetchrow(
        f"""SELECT count(*) AS turns,
                   count(*) FILTER (WHERE (ai_metadata->>'interrupted')::boolean) AS interrupted,
                   count(*) FILTER (WHERE ai_metadata ? 'retrieval_skipped') AS retrieval_skipped,
                   {stages}
            FROM messages
            WHERE company_id = $1 AND sender_type = 'agent' AND ai_metadata ? 'latency'
              AND created_at >= $2 AND created_at < $3""",
        company_id,
        start,
        end,
    )
    return dict(row)
