"""One page of a filtered listing, and how many rows match in all."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg


async def page(
    conn: asyncpg.Connection,
    table: str,
    columns: str,
    where: str,
    args: Sequence[Any],
    *,
    order_by: str,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """`where` binds $1..$len(args); LIMIT and OFFSET are numbered after
    them here, so no caller counts placeholders. Table, columns, filter and
    order are the store's own constants, never a client's text."""
    n = len(args)
    rows = await conn.fetch(
        f"SELECT {columns} FROM {table} WHERE {where}"
        f" ORDER BY {order_by} LIMIT ${n + 1} OFFSET ${n + 2}",
        *args,
        limit,
        offset,
    )
    total = await conn.fetchval(f"SELECT count(*) FROM {table} WHERE {where}", *args)
    return [dict(r) for r in rows], total
