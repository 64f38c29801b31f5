from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

COLUMNS = (
    "id, conversation_id, seq, sender_type, sender_id, content, attachments, ai_metadata,"
    " metadata, client_id, created_at"
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
) -> tuple[dict[str, Any] | None, bool]:
    """Store a message with the conversation's next seq.

    Returns (message, created). (None, False) when the conversation does not
    exist for this tenant; (existing, False) when `client_id` was stored before.
    The conversation row lock serialises appends, which keeps seq gap-free and
    makes the client_id check race-free.
    """
    row = await conn.fetchrow(
        f"""SELECT c.id AS conversation, m.*
            FROM conversations c
            LEFT JOIN LATERAL (
                SELECT {COLUMNS} FROM messages
                WHERE conversation_id = c.id AND client_id = $2 AND $2 IS NOT NULL
            ) m ON true
            WHERE c.id = $1
            FOR UPDATE OF c""",
        conversation_id,
        client_id,
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
            INSERT INTO messages (company_id, conversation_id, seq, sender_type, sender_id,
                                  content, attachments, ai_metadata, metadata, client_id,
                                  response_ms, model, prompt_tokens, completion_tokens)
            SELECT $1, $2, bumped.last_seq, $3, $4, $5, $6, $7, $8, $9,
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
    )
    return dict(stored), True


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
