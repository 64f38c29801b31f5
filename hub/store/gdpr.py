"""Queries for data-protection requests: export, erasure and retention."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from hub.store import messages


async def contact_conversations(conn: asyncpg.Connection, contact_id: UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT c.id, c.agent_id, c.channel, c.status, c.started_at, c.ended_at, c.tags,
                  c.metadata, r.rating, r.comment AS rating_comment
           FROM conversations c LEFT JOIN conversation_ratings r ON r.conversation_id = c.id
           WHERE c.contact_id = $1 ORDER BY c.started_at""",
        contact_id,
    )
    out = []
    for row in rows:
        conversation = dict(row)
        conversation["messages"] = await messages.page(conn, row["id"], limit=1_000_000)
        out.append(conversation)
    return out


async def erase_contact(conn: asyncpg.Connection, contact_id: UUID) -> dict[str, int] | None:
    """Erase a person: their contact row and everything their conversations
    said, keeping the conversations' existence, timing, channel, agent and
    token counts, so that analytics totals stay right. None if not found."""
    if not await conn.fetchval("SELECT true FROM contacts WHERE id = $1 FOR UPDATE", contact_id):
        return None
    conversation_ids = [
        r["id"]
        for r in await conn.fetch("SELECT id FROM conversations WHERE contact_id = $1", contact_id)
    ]
    erased = await conn.execute(
        """UPDATE messages SET content = '', attachments = '[]', metadata = '{}',
                  ai_metadata = ai_metadata - 'sources', client_id = NULL
           WHERE conversation_id = ANY($1::uuid[])""",
        conversation_ids,
    )
    await conn.execute(
        """UPDATE conversations SET metadata = '{}', tags = '{}', summary = NULL,
                  contact_id = NULL
           WHERE id = ANY($1::uuid[])""",
        conversation_ids,
    )
    await conn.execute(
        "UPDATE conversation_ratings SET comment = NULL WHERE conversation_id = ANY($1::uuid[])",
        conversation_ids,
    )
    await conn.execute(
        "DELETE FROM attachments WHERE conversation_id = ANY($1::uuid[])", conversation_ids
    )
    # Notifications about those conversations may quote the person (a handoff
    # reason, a failure's cause): only their ids stay, for the counts.
    await conn.execute(
        r"""UPDATE notifications SET body = NULL,
                  data = coalesce((SELECT jsonb_object_agg(k, v) FROM jsonb_each(data) AS d(k, v)
                                   WHERE k LIKE '%\_id'), '{}')
           WHERE data->>'conversation_id' = ANY($1::text[])""",
        [str(c) for c in conversation_ids],
    )
    await conn.execute("DELETE FROM contacts WHERE id = $1", contact_id)
    return {"conversations": len(conversation_ids), "messages": int(erased.split()[-1])}


async def retention_days(conn: asyncpg.Connection, company_id: UUID) -> int | None:
    return await conn.fetchval(
        "SELECT (settings->>'retention_days')::int FROM companies WHERE id = $1", company_id
    )


async def set_retention_days(conn: asyncpg.Connection, company_id: UUID, days: int | None) -> None:
    await conn.execute(
        """UPDATE companies SET settings = CASE WHEN $2::int IS NULL
                  THEN settings - 'retention_days'
                  ELSE settings || jsonb_build_object('retention_days', $2::int) END
           WHERE id = $1""",
        company_id,
        days,
    )


async def companies_with_retention(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """Across tenants (system transaction)."""
    rows = await conn.fetch(
        """SELECT id, (settings->>'retention_days')::int AS days FROM companies
           WHERE settings ? 'retention_days'"""
    )
    return [dict(r) for r in rows]


async def delete_older_than(conn: asyncpg.Connection, cutoff: datetime) -> int:
    """Conversations (and, by cascade, their messages) last active before cutoff."""
    status = await conn.execute(
        """DELETE FROM conversations
           WHERE coalesce(ended_at, last_message_at, started_at) < $1""",
        cutoff,
    )
    return int(status.split()[-1])


# What a company export holds, table by table: everything but secrets
# (password, key and invitation token hashes) and file bytes.
EXPORTS = {
    "users": "SELECT id, email, name, role, created_at FROM users",
    "invitations": "SELECT id, email, role, invited_by, created_at, expires_at, accepted_at,"
    " user_id FROM invitations",
    "agents": "SELECT * FROM agents",
    "agent_keys": "SELECT id, agent_id, key_prefix, allowed_origins, created_at, revoked_at"
    " FROM agent_keys",
    "contacts": "SELECT * FROM contacts",
    "deals": "SELECT * FROM deals",
    "conversations": "SELECT * FROM conversations",
    "messages": "SELECT * FROM messages",
    "conversation_ratings": "SELECT * FROM conversation_ratings",
    "attachments": "SELECT id, conversation_id, name, type, size, created_at FROM attachments",
    "documents": "SELECT id, agent_id, title, description, filename, content_type, size, status,"
    " error, notice, chunk_count, created_at, processed_at FROM documents",
    # The passages as text; their vectors are derived from it and left out.
    "chunks": "SELECT id, document_id, agent_id, position, page, heading, content, token_count,"
    " embedding_model FROM chunks",
    "notifications": "SELECT * FROM notifications",
    "voice_numbers": "SELECT * FROM voice_numbers",
    "model_usage": "SELECT * FROM model_usage",
    "audit_log": "SELECT * FROM audit_log",
}


async def export_page(conn: asyncpg.Connection, table: str, after: str | None, limit: int) -> list:
    """A page of one table of the company export, in id order (RLS scopes it)."""
    rows = await conn.fetch(
        f"""SELECT * FROM ({EXPORTS[table]}) t
            WHERE ($1::text IS NULL OR t.id::text > $1) ORDER BY t.id::text LIMIT $2""",
        after,
        limit,
    )
    return [dict(r) for r in rows]
