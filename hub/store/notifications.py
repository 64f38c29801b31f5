from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from hub.store import paging

COLUMNS = "id, user_id, type, title, body, data, read, read_at, created_at"


async def page(
    conn: asyncpg.Connection, user_id: UUID, *, limit: int, offset: int, read: bool | None
) -> tuple[list[dict[str, Any]], int]:
    where = "user_id = $1 AND ($2::boolean IS NULL OR read = $2)"
    return await paging.page(
        conn,
        "notifications",
        COLUMNS,
        where,
        (user_id, read),
        order_by="created_at DESC, id DESC",
        limit=limit,
        offset=offset,
    )


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
