from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

COLUMNS = (
    "id, conversation_id, seq, sender_type, sender_id, content, attachments, ai_metadata,"
    " metadata, client_id, reply_to, created_at"
)


async def append(
    conn: asyncpg.Connection,
    *,
    company_id: UUID,
    conversation_id: UUID,
    sender_type: str,
    content: str,
    sender_id: UUID | None = None,
    attachments: list[dict[str, Any]] | None = None,
    ai_metadata: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    client_id: str | None = None,
    reply_to: UUID | None = None,
    id: UUID | None = None,
) -> tuple[dict[str, Any] | None, bool]:
    """Store a message with the conversation's next seq.

    Returns (message, created). (None, False) when the conversation does not
    exist for this tenant; (existing, False) when `client_id` was stored before,
    or when a reply to `reply_to` exists already.
    The conversation row lock serialises appends, which keeps seq gap-free and
    makes the client_id check race-free.
    """
    row = await conn.fetchrow(
        f"""SELECT c.id AS conversation, m.*
            FROM conversations c
            LEFT JOIN LATERAL (
                SELECT {COLUMNS} FROM messages
                WHERE conversation_id = c.id
                  AND ((client_id = $2 AND $2 IS NOT NULL) OR (reply_to = $3 AND $3 IS NOT NULL))
                LIMIT 1
            ) m ON true
            WHERE c.id = $1
            FOR UPDATE OF c""",
        conversation_id,
        client_id,
        reply_to,
    )
    if row is None:
        return None, False
    if row["id"] is not None:
        return {k: v for k, v in row.items() if k != "conversation"}, False

    stored = await conn.fetchrow(
        f"""WITH old AS (
                SELECT awaiting_reply_since FROM conversations WHERE id = $2
            ), bumped AS (
                UPDATE conversations SET
                    last_seq = last_seq + 1,
                    last_message_at = now(),
                    awaiting_reply_since = CASE
                        WHEN $3 = 'user' THEN coalesce(awaiting_reply_since, now())
                        WHEN $3 IN ('agent', 'human') THEN NULL
                        ELSE awaiting_reply_since END
                WHERE id = $2
                RETURNING last_seq
            )
            INSERT INTO messages (id, company_id, conversation_id, seq, sender_type, sender_id,
                                  content, attachments, ai_metadata, metadata, client_id,
                                  reply_to, response_ms, model, prompt_tokens, completion_tokens)
            SELECT coalesce($11, gen_random_uuid()), $1, $2, bumped.last_seq, $3, $4, $5, $6,
                   $7, $8, $9, $10,
                   CASE WHEN $3 = 'agent' AND old.awaiting_reply_since IS NOT NULL
                        THEN (extract(epoch FROM now() - old.awaiting_reply_since) * 1000)::int
                   END,
                   $7::jsonb->>'model', ($7::jsonb->>'prompt_tokens')::int,
                   ($7::jsonb->>'completion_tokens')::int
            FROM bumped, old
            RETURNING {COLUMNS}""",
        company_id,
        conversation_id,
        sender_type,
        sender_id,
        content,
        attachments or [],
        ai_metadata,
        metadata or {},
        client_id,
        reply_to,
        id,
    )
    return dict(stored), True


async def free_reply_slot(
    conn: asyncpg.Connection, conversation_id: UUID, message_id: UUID
) -> None:
    """A failure notice (a turn given up on) answers a user message only until
    a real reply does: a turn dead-lettered while it was in fact still running
    (its worker slow, not dead) keeps its answer, shown after the notice."""
    await conn.execute(
        """UPDATE messages SET reply_to = NULL
           WHERE conversation_id = $1 AND reply_to = $2 AND sender_type = 'system'""",
        conversation_id,
        message_id,
    )


async def page(
    conn: asyncpg.Connection,
    conversation_id: UUID,
    *,
    limit: int,
    after_seq: int | None = None,
    before_seq: int | None = None,
) -> list[dict[str, Any]]:
    """Messages in seq order. With before_seq, the `limit` newest before it
    (still returned oldest first), for scrolling back through history."""
    if before_seq is not None:
        rows = await conn.fetch(
            f"""SELECT * FROM (
                    SELECT {COLUMNS} FROM messages
                    WHERE conversation_id = $1 AND seq < $2 AND seq > coalesce($3, 0)
                    ORDER BY seq DESC LIMIT $4
                ) newest ORDER BY seq""",
            conversation_id,
            before_seq,
            after_seq,
            limit,
        )
    else:
        rows = await conn.fetch(
            f"""SELECT {COLUMNS} FROM messages
                WHERE conversation_id = $1 AND seq > coalesce($2, 0)
                ORDER BY seq LIMIT $3""",
            conversation_id,
            after_seq,
            limit,
        )
    return [dict(r) for r in rows]


async def get(conn: asyncpg.Connection, message_id: UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {COLUMNS} FROM messages WHERE id = $1", message_id)
    return dict(row) if row else None


async def find_by_client_id(
    conn: asyncpg.Connection, conversation_id: UUID, client_id: str
) -> dict[str, Any] | None:
    """The message stored under `client_id`, or None. Locks the conversation
    row until the transaction ends, so that of two writers looking for the
    same client_id, the one that finds nothing stores it before the other looks."""
    await conn.execute("SELECT FROM conversations WHERE id = $1 FOR UPDATE", conversation_id)
    row = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM messages WHERE conversation_id = $1 AND client_id = $2",
        conversation_id,
        client_id,
    )
    return dict(row) if row else None


async def unanswered(
    conn: asyncpg.Connection, conversation_id: UUID, up_to_seq: int
) -> list[dict[str, Any]]:
    """User messages up to `up_to_seq` that no AI reply answers yet, oldest
    first. What came before the last staff message was answered by a person."""
    rows = await conn.fetch(
        f"""SELECT {COLUMNS} FROM messages m
            WHERE m.conversation_id = $1 AND m.sender_type = 'user' AND m.seq <= $2
              AND m.seq > coalesce((SELECT max(seq) FROM messages
                                    WHERE conversation_id = $1 AND sender_type = 'human'), 0)
              AND NOT EXISTS (SELECT 1 FROM messages r
                              WHERE r.conversation_id = $1 AND r.reply_to = m.id)
            ORDER BY m.seq""",
        conversation_id,
        up_to_seq,
    )
    return [dict(r) for r in rows]


async def window(
    conn: asyncpg.Connection, conversation_id: UUID, *, after_seq: int, up_to_seq: int, limit: int
) -> list[dict[str, Any]]:
    """The last `limit` messages in (after_seq, up_to_seq], oldest first."""
    rows = await conn.fetch(
        f"""SELECT * FROM (
                SELECT {COLUMNS} FROM messages
                WHERE conversation_id = $1 AND seq > $2 AND seq <= $3
                ORDER BY seq DESC LIMIT $4
            ) recent ORDER BY seq""",
        conversation_id,
        after_seq,
        up_to_seq,
        limit,
    )
    return [dict(r) for r in rows]


async def awaiting_reply(
    conn: asyncpg.Connection, since: datetime, until: datetime | None = None
) -> list[dict[str, Any]]:
    """Across tenants (system transaction): per conversation the newest user
    message stored between `since` and `until` that the AI should answer and has
    not, with how often its turn was queued again already."""
    rows = await conn.fetch(
        """SELECT DISTINCT ON (m.conversation_id) m.company_id, m.conversation_id, m.id, m.seq,
                  m.turn_recoveries
           FROM messages m JOIN conversations c ON c.id = m.conversation_id
                JOIN agents a ON a.id = c.agent_id
           WHERE m.sender_type = 'user' AND m.created_at > $1
             AND ($2::timestamptz IS NULL OR m.created_at <= $2)
             AND c.status = 'active' AND NOT c.ai_paused AND a.enabled
             AND NOT EXISTS (SELECT 1 FROM messages r
                             WHERE r.conversation_id = m.conversation_id AND r.reply_to = m.id)
           ORDER BY m.conversation_id, m.seq DESC""",
        since,
        until,
    )
    return [dict(r) for r in rows]


async def count_recoveries(conn: asyncpg.Connection, message_ids: list[UUID]) -> None:
    """Note that the turns of these user messages are being queued again."""
    await conn.execute(
        "UPDATE messages SET turn_recoveries = turn_recoveries + 1 WHERE id = ANY($1::uuid[])",
        message_ids,
    )
