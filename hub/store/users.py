from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

_PUBLIC_COLUMNS = "id, company_id, email, name, role, created_at"


async def create(
    conn: asyncpg.Connection,
    *,
    company_id: UUID,
    email: str,
    role: str,
    password_hash: str | None,
    name: str | None = None,
) -> dict[str, Any] | None:
    """Returns None when the email is taken."""
    row = await conn.fetchrow(
        f"""INSERT INTO users (company_id, email, name, role, password_hash)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT ((lower(email))) DO NOTHING
            RETURNING {_PUBLIC_COLUMNS}""",
        company_id,
        email,
        name,
        role,
        password_hash,
    )
    return dict(row) if row else None


async def find_for_login(conn: asyncpg.Connection, email: str) -> dict[str, Any] | None:
    """Across tenants: log-in happens before a company is known (system transaction)."""
    row = await conn.fetchrow(
        f"SELECT {_PUBLIC_COLUMNS}, password_hash FROM users WHERE lower(email) = lower($1)",
        email,
    )
    return dict(row) if row else None


async def get(conn: asyncpg.Connection, user_id: UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {_PUBLIC_COLUMNS} FROM users WHERE id = $1", user_id)
    return dict(row) if row else None


async def list_for_company(conn: asyncpg.Connection, company_id: UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT {_PUBLIC_COLUMNS} FROM users WHERE company_id = $1 ORDER BY created_at, id",
        company_id,
    )
    return [dict(r) for r in rows]
