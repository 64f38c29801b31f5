from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

COLUMNS = "id, user_id, type, title, body, data, read, read_at, created_at"


async def page(
    conn: asyncpg.Connection, user_id: UUID, *, limit: int, offset: int, read: bool | None
) -> tuple[list[dict[str, Any]], int]:
    where = "user_id = $1 AND ($2::boolean IS NULL OR read = $2)"
    rows = await conn.fetch(
        f"""SELECT {COLUMNS} FROM notifications WHERE {where}
            ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4""",
        user_id,
        read,
        limit,
        offset,
    )
    total = await conn.fetchval(f"SELECT count(*) FROM notifications WHERE {where}", user_id, read)
    return [dict(r) for r in rows], total


async def mark_read(
    conn: asyncpg.Connection, user_id: UUID, notification_id: UUID
) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"""UPDATE notifications SET read = true, read_at = coalesce(read_at, now())
            WHERE id = $1 AND user_id = $2 RETURNING {COLUMNS}""",
        notification_id,
        user_id,
    )
    return dict(row) if row else None


async def mark_all_read(conn: asyncpg.Connection, user_id: UUID) -> int:
    status = await conn.execute(
        "UPDATE notifications SET read = true, read_at = now() WHERE user_id = $1 AND NOT read",
        user_id,
    )
    return int(status.split()[-1])


async def unread_count(conn: asyncpg.Connection, user_id: UUID) -> int:
    return await conn.fetchval(
        "SELECT count(*) FROM notifications WHERE user_id = $1 AND NOT read", user_id
    )
