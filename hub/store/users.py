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
    external_id: UUID | None = None,
) -> dict[str, Any] | None:
    """Returns None when the email (or the external id) is taken."""
    row = await conn.fetchrow(
        f"""INSERT INTO users (company_id, email, name, role, password_hash, external_id)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT DO NOTHING
            RETURNING {_PUBLIC_COLUMNS}""",
        company_id,
        email,
        name,
        role,
        password_hash,
        external_id,
    )
    return dict(row) if row else None


async def standing(
    conn: asyncpg.Connection, subject: UUID, company_id: UUID | None
) -> tuple[dict[str, Any] | None, bool]:
    """(the hub user a token's `sub` names — by its id, or by the external id
    linked to it — if any; whether the token's company exists, True when it
    names none). One statement: it runs on every authenticated request."""
    row = await conn.fetchrow(
        """SELECT u.id, u.company_id, u.role, u.email,
                  ($2::uuid IS NULL OR EXISTS (SELECT 1 FROM companies WHERE id = $2))
                      AS company_exists
           FROM (VALUES (1)) AS one
           LEFT JOIN LATERAL (
               SELECT id, company_id, role, email FROM users
               WHERE id = $1 OR external_id = $1
               ORDER BY id = $1 DESC LIMIT 1
           ) AS u ON true""",
        subject,
        company_id,
    )
    user = None
    if row["id"] is not None:
        user = {k: row[k] for k in ("id", "company_id", "role", "email")}
    return user, row["company_exists"]


async def linked(conn: asyncpg.Connection, subject: UUID) -> bool:
    """Whether a hub user already has this id or is linked to it."""
    return await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 OR external_id = $1)", subject
    )


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
