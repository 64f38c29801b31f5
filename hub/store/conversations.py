from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from hub.store import paging

COLUMNS = (
    "id, agent_id, contact_id, channel, status, started_at, ended_at, last_message_at,"
    " tags, metadata, ai_paused, handoff_requested_at"
)


async def create(
    conn: asyncpg.Connection,
    *,
    company_id: UUID,
    agent_id: UUID | None,
    channel: str = "chat",
    contact_id: UUID | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"""INSERT INTO conversations (company_id, agent_id, contact_id, channel, metadata)
            VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}""",
        company_id,
        agent_id,
        contact_id,
        channel,
        metadata or {},
    )
    return dict(row)


async def get(conn: asyncpg.Connection, conversation_id: UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {COLUMNS} FROM conversations WHERE id = $1", conversation_id)
    return dict(row) if row else None


async def page(
    conn: asyncpg.Connection,
    company_id: UUID,
    *,
    limit: int,
    offset: int,
    status: str | None = None,
    agent_id: UUID | None = None,
    channel: str | None = None,
    contact_id: UUID | None = None,
    started_from: datetime | None = None,
    started_before: datetime | None = None,
    waiting: bool | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Newest first; `total` counts every conversation that matches the filter.
    `waiting`: active, handed off by the AI, and no person has taken it yet."""
    where = """company_id = $1
        AND ($2::text IS NULL OR status = $2)
        AND ($3::uuid IS NULL OR agent_id = $3)
        AND ($4::text IS NULL OR channel = $4)
        AND ($5::uuid IS NULL OR contact_id = $5)
        AND ($6::timestamptz IS NULL OR started_at >= $6)
        AND ($7::timestamptz IS NULL OR started_at < $7)
        AND ($8::boolean IS NULL
             OR (status = 'active' AND handoff_requested_at IS NOT NULL) = $8)"""
    args = (
        company_id,
        status,
        agent_id,
        channel,
        contact_id,
        started_from,
        started_before,
        waiting,
    )
    return await paging.page(
        conn,
        "conversations",
        COLUMNS,
        where,
        args,
        order_by="started_at DESC, id DESC",
        limit=limit,
        offset=offset,
    )


async def update(
    conn: asyncpg.Connection, conversation_id: UUID, fields: dict[str, Any]
) -> tuple[dict[str, Any] | None, str | None]:
    """Apply status/tags/metadata; returns (conversation, previous status).

    Ending or archiving stamps ended_at once; reopening clears it.
    """
    row = await conn.fetchrow(
        f"""WITH old AS (SELECT status FROM conversations WHERE id = $1 FOR UPDATE)
            UPDATE conversations c SET
                status = coalesce($2, c.status),
                ended_at = CASE
                    WHEN $2 IN ('ended', 'archived') THEN coalesce(c.ended_at, now())
                    WHEN $2 = 'active' THEN NULL
                    ELSE c.ended_at END,
                tags = coalesce($3, c.tags),
                metadata = coalesce($4, c.metadata)
            FROM old WHERE c.id = $1
            RETURNING {", ".join("c." + col.strip() for col in COLUMNS.split(","))},
                      old.status AS previous_status""",
        conversation_id,
        fields.get("status"),
        fields.get("tags"),
        fields.get("metadata"),
    )
    if row is None:
        return None, None
    conversation = dict(row)
    return conversation, conversation.pop("previous_status")


async def for_turn(conn: asyncpg.Connection, conversation_id: UUID) -> dict[str, Any] | None:
    """What an agent turn needs to know about its conversation."""
    row = await conn.fetchrow(
        """SELECT id, agent_id, contact_id, channel, status, ai_paused, summary, summary_seq,
                  last_seq
           FROM conversations WHERE id = $1""",
        conversation_id,
    )
    return dict(row) if row else None


async def set_summary(
    conn: asyncpg.Connection, conversation_id: UUID, summary: str, upto_seq: int, previous_seq: int
) -> bool:
    """Store a refreshed summary unless another refresh got there first."""
    return (
        await conn.execute(
            """UPDATE conversations SET summary = $2, summary_seq = $3
               WHERE id = $1 AND summary_seq = $4""",
            conversation_id,
            summary,
            upto_seq,
            previous_seq,
        )
    ) == "UPDATE 1"


async def set_ai_paused(
    conn: asyncpg.Connection, conversation_id: UUID, paused: bool, *, handoff: bool = False
) -> dict[str, Any] | None:
    """Pause or resume the AI. `handoff`: the AI asks for a person, who is
    then awaited (handoff_requested_at) until staff take over or hand back."""
    row = await conn.fetchrow(
        f"""UPDATE conversations SET ai_paused = $2,
                handoff_requested_at = CASE WHEN $3 THEN now() END
            WHERE id = $1 RETURNING {COLUMNS}""",
        conversation_id,
        paused,
        handoff,
    )
    return dict(row) if row else None


async def link_contact(conn: asyncpg.Connection, conversation_id: UUID, contact_id: UUID) -> None:
    await conn.execute(
        "UPDATE conversations SET contact_id = $2 WHERE id = $1", conversation_id, contact_id
    )


async def idle(
    conn: asyncpg.Connection, cutoff: datetime, limit: int = 500
) -> list[dict[str, Any]]:
    """Across tenants (system transaction): active conversations quiet since `cutoff`."""
    rows = await conn.fetch(
        """SELECT id, company_id FROM conversations
           WHERE status = 'active' AND coalesce(last_message_at, started_at) < $1
           ORDER BY coalesce(last_message_at, started_at) LIMIT $2""",
        cutoff,
        limit,
    )
    return [dict(r) for r in rows]
