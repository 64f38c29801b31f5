from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from hub.store import paging

COLUMNS = (
    "id, contact_id, title, value, currency, stage, probability, expected_close_date, metadata,"
    " created_at, updated_at, closed_at"
)
WRITABLE = (
    "contact_id",
    "title",
    "value",
    "currency",
    "stage",
    "probability",
    "expected_close_date",
    "metadata",
)


async def page(
    conn: asyncpg.Connection,
    company_id: UUID,
    *,
    limit: int,
    offset: int,
    stage: str | None,
    contact_id: UUID | None,
) -> tuple[list[dict[str, Any]], int]:
    where = """company_id = $1 AND ($2::text IS NULL OR stage = $2)
               AND ($3::uuid IS NULL OR contact_id = $3)"""
    args = (company_id, stage, contact_id)
    return await paging.page(
        conn,
        "deals",
        COLUMNS,
        where,
        args,
        order_by="created_at DESC, id DESC",
        limit=limit,
        offset=offset,
    )


async def create(conn: asyncpg.Connection, company_id: UUID, fields: dict[str, Any]) -> dict:
    names = [n for n in WRITABLE if n in fields]
    placeholders = ", ".join(f"${i}" for i in range(2, len(names) + 2))
    row = await conn.fetchrow(
        f"""INSERT INTO deals (company_id, {", ".join(names)}) VALUES ($1, {placeholders})
            RETURNING {COLUMNS}""",
        company_id,
        *(fields[n] for n in names),
    )
    return dict(row)


async def get(conn: asyncpg.Connection, deal_id: UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {COLUMNS} FROM deals WHERE id = $1", deal_id)
    return dict(row) if row else None


async def for_contact(conn: asyncpg.Connection, contact_id: UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM deals WHERE contact_id = $1 ORDER BY created_at DESC", contact_id
    )
    return [dict(r) for r in rows]


async def update(
    conn: asyncpg.Connection, deal_id: UUID, fields: dict[str, Any]
) -> tuple[dict[str, Any] | None, str | None]:
    """Returns (deal, previous stage)."""
    names = [n for n in WRITABLE if n in fields]
    assignments = "".join(f", {n} = ${i}" for i, n in enumerate(names, start=2))
    row = await conn.fetchrow(
        f"""WITH old AS (SELECT stage FROM deals WHERE id = $1 FOR UPDATE)
            UPDATE deals d SET updated_at = now(){assignments}
            FROM old WHERE d.id = $1
            RETURNING {", ".join("d." + c.strip() for c in COLUMNS.split(","))},
                      old.stage AS previous_stage""",
        deal_id,
        *(fields[n] for n in names),
    )
    if row is None:
        return None, None
    deal = dict(row)
    return deal, deal.pop("previous_stage")


async def delete(conn: asyncpg.Connection, deal_id: UUID) -> bool:
    return bool(await conn.fetchval("DELETE FROM deals WHERE id = $1 RETURNING true", deal_id))
