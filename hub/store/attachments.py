from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg


async def create(
    conn: asyncpg.Connection,
    *,
    company_id: UUID,
    conversation_id: UUID,
    name: str,
    type: str,
    data: bytes,
) -> dict[str, Any]:
    row = await conn.fetchrow(
        """INSERT INTO attachments (company_id, conversation_id, name, type, size, data)
           VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, name, type, size""",
        company_id,
        conversation_id,
        name,
        type,
        len(data),
        data,
    )
    return dict(row)


async def get(conn: asyncpg.Connection, attachment_id: UUID) -> dict[str, Any] | None:
    """Across tenants (system transaction): the signed link is the permission."""
    row = await conn.fetchrow(
        "SELECT id, name, type, data FROM attachments WHERE id = $1", attachment_id
    )
    return dict(row) if row else None
