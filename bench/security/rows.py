"""What PostgreSQL holds of a company, read as the owning role (which
row-level security does not restrict): snapshots to prove an attack changed
nothing, and searches for another company's ids in a company's rows."""

from __future__ import annotations

import uuid

import asyncpg

from bench.security.target import Target


async def tenant_tables(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        """SELECT table_name FROM information_schema.columns
           WHERE table_schema = 'public' AND column_name = 'company_id'
           ORDER BY table_name"""
    )
    return [r["table_name"] for r in rows]


async def snapshot(target: Target, company_id: str) -> dict[str, list[str]]:
    """Every row of the company, as JSON text, table by table."""
    conn = await target.connect_db()
    try:
        rows = {
            "companies": [
                await conn.fetchval(
                    "SELECT row_to_json(c)::text FROM companies c WHERE id = $1",
                    uuid.UUID(company_id),
                )
            ]
        }
        for table in await tenant_tables(conn):
            rows[table] = sorted(
                await conn.fetchval(
                    f"""SELECT coalesce(array_agg(row_to_json(t)::text), '{{}}')
                        FROM "{table}" t WHERE company_id = $1""",
                    uuid.UUID(company_id),
                )
            )
        return rows
    finally:
        await conn.close()


def changes(before: dict[str, list[str]], after: dict[str, list[str]]) -> list[str]:
    """What differs between two snapshots, table by table."""
    found = []
    for table in sorted(before.keys() | after.keys()):
        old, new = set(before.get(table, [])), set(after.get(table, []))
        if old != new:
            found.append(
                f"{table}: {len(old - new)} row(s) changed or gone, {len(new - old)} new or changed"
            )
    return found


async def mentions(
    target: Target, company_id: str, needles: set[str], skip: tuple[str, ...] = ()
) -> list[str]:
    """Rows of the company that mention any of `needles` (another company's ids
    and canaries): a reference stored across tenants."""
    found = []
    for table, rows in (await snapshot(target, company_id)).items():
        if table in skip:
            continue
        for row in rows:
            hits = sorted(n for n in needles if n and n in row)
            if hits:
                found.append(f"{table} row mentions {', '.join(hits)}: {row[:300]}")
    return found
