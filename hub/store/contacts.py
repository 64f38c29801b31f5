from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from hub.store import paging

COLUMNS = (
    "id, email, first_name, last_name, company_name, phone, tags, metadata, created_at, updated_at"
)
WRITABLE = ("email", "first_name", "last_name", "company_name", "phone", "tags", "metadata")
_SEARCH = (
    "lower(coalesce(first_name, '') || ' ' || coalesce(last_name, '') || ' '"
    " || coalesce(email, '') || ' ' || coalesce(company_name, ''))"
)


def _like(search: str) -> str:
    escaped = search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def page(
    conn: asyncpg.Connection, company_id: UUID, *, limit: int, offset: int, search: str | None
) -> tuple[list[dict[str, Any]], int]:
    where = f"company_id = $1 AND ($2::text IS NULL OR {_SEARCH} LIKE $2)"
    pattern = _like(search) if search else None
    return await paging.page(
        conn,
        "contacts",
        COLUMNS,
        where,
        (company_id, pattern),
        order_by="created_at DESC, id DESC",
        limit=limit,
        offset=offset,
    )


async def create(
    conn: asyncpg.Connection, company_id: UUID, fields: dict[str, Any]
) -> dict[str, Any] | None:
    """None when the email is taken in this company."""
    names = [n for n in WRITABLE if n in fields]
    placeholders = ", ".join(f"${i}" for i in range(2, len(names) + 2))
    row = await conn.fetchrow(
        f"""INSERT INTO contacts (company_id, {", ".join(names)}) VALUES ($1, {placeholders})
            ON CONFLICT (company_id, lower(email)) WHERE email IS NOT NULL DO NOTHING
            RETURNING {COLUMNS}""",
        company_id,
        *(fields[n] for n in names),
    )
    return dict(row) if row else None


async def get(conn: asyncpg.Connection, contact_id: UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {COLUMNS} FROM contacts WHERE id = $1", contact_id)
    return dict(row) if row else None


async def find(
    conn: asyncpg.Connection, company_id: UUID, *, email: str | None, phone: str | None
) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"""SELECT {COLUMNS} FROM contacts
            WHERE company_id = $1
              AND ((lower(email) = lower($2) AND $2 IS NOT NULL)
                   OR (phone = $3 AND $3 IS NOT NULL))
            ORDER BY (lower(email) = lower($2)) DESC NULLS LAST LIMIT 1""",
        company_id,
        email,
        phone,
    )
    return dict(row) if row else None


async def update(
    conn: asyncpg.Connection, contact_id: UUID, fields: dict[str, Any]
) -> dict[str, Any] | None:
    names = [n for n in WRITABLE if n in fields]
    if not names:
        return await get(conn, contact_id)
    assignments = ", ".join(f"{n} = ${i}" for i, n in enumerate(names, start=2))
    row = await conn.fetchrow(
        f"UPDATE contacts SET {assignments}, updated_at = now() WHERE id = $1 RETURNING {COLUMNS}",
        contact_id,
        *(fields[n] for n in names),
    )
    return dict(row) if row else None


async def delete(conn: asyncpg.Connection, contact_id: UUID) -> bool:
    return bool(
        await conn.fetchval("DELETE FROM contacts WHERE id = $1 RETURNING true", contact_id)
    )


async def conversations_of(conn: asyncpg.Connection, contact_id: UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT id, agent_id, channel, status, started_at, ended_at FROM conversations
           WHERE contact_id = $1 ORDER BY started_at DESC""",
        contact_id,
    )
    return [dict(r) for r in rows]
