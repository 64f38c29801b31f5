from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg


async def create(conn: asyncpg.Connection, name: str) -> dict[str, Any]:
    row = await conn.fetchrow(
        "INSERT INTO companies (name) VALUES ($1) RETURNING id, name, created_at", name
    )
    return dict(row)


async def get(conn: asyncpg.Connection, company_id: UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT id, name, created_at FROM companies WHERE id = $1", company_id
    )
    return dict(row) if row else None


async def ensure(conn: asyncpg.Connection, company_id: UUID, name: str) -> None:
    """A company known from an external identity provider's token gets its row
    on first sight, so that its data has a parent."""
    await conn.execute(
        "INSERT INTO companies (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
        company_id,
        name,
    )
