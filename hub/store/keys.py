from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

_COLUMNS = "id, agent_id, key_prefix, allowed_origins, created_at, revoked_at"


async def create(
    conn: asyncpg.Connection,
    *,
    company_id: UUID,
    agent_id: UUID,
    key_hash: bytes,
    key_prefix: str,
    allowed_origins: list[str],
) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"""INSERT INTO agent_keys (company_id, agent_id, key_hash, key_prefix, allowed_origins)
            VALUES ($1, $2, $3, $4, $5) RETURNING {_COLUMNS}""",
        company_id,
        agent_id,
        key_hash,
        key_prefix,
        allowed_origins,
    )
    return dict(row)


async def list_for_agent(conn: asyncpg.Connection, agent_id: UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM agent_keys
            WHERE agent_id = $1 AND revoked_at IS NULL ORDER BY created_at""",
        agent_id,
    )
    return [dict(r) for r in rows]


async def revoke(conn: asyncpg.Connection, agent_id: UUID, key_id: UUID) -> bool:
    return (
        await conn.execute(
            """UPDATE agent_keys SET revoked_at = now()
               WHERE id = $1 AND agent_id = $2 AND revoked_at IS NULL""",
            key_id,
            agent_id,
        )
    ) == "UPDATE 1"


async def find_active(conn: asyncpg.Connection, key_hash: bytes) -> dict[str, Any] | None:
    """Across tenants (system transaction): the key is what names the company."""
    row = await conn.fetchrow(
        """SELECT k.id, k.company_id, k.agent_id, k.allowed_origins
           FROM agent_keys k JOIN agents a ON a.id = k.agent_id
           WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND a.enabled""",
        key_hash,
    )
    return dict(row) if row else None


async def is_active(
    conn: asyncpg.Connection, key_id: UUID, conversation_id: UUID
) -> dict[str, Any] | None:
    """The key if it is not revoked, and whether the conversation a token of
    it names still exists (`conversation_exists`): one round trip for both."""
    row = await conn.fetchrow(
        """SELECT id, allowed_origins,
                  EXISTS (SELECT 1 FROM conversations WHERE id = $2) AS conversation_exists
           FROM agent_keys WHERE id = $1 AND revoked_at IS NULL""",
        key_id,
        conversation_id,
    )
    return dict(row) if row else None


async def set_origins(conn: asyncpg.Connection, key_hash: bytes, origins: list[str]) -> bool:
    """Replace an active key's allowed origins; False if it is gone or revoked."""
    return (
        await conn.execute(
            """UPDATE agent_keys SET allowed_origins = $2
               WHERE key_hash = $1 AND revoked_at IS NULL""",
            key_hash,
            origins,
        )
    ) == "UPDATE 1"
