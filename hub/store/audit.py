from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg


async def record(
    conn: asyncpg.Connection,
    *,
    company_id: UUID,
    user_id: UUID | None,
    method: str,
    path: str,
    resource_id: str | None,
    status: int,
    ip: str | None,
    request_id: str,
) -> None:
    await conn.execute(
        """INSERT INTO audit_log
               (company_id, user_id, method, path, resource_id, status, ip, request_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
        company_id,
        user_id,
        method,
        path,
        resource_id,
        status,
        ip,
        request_id,
    )


async def page(
    conn: asyncpg.Connection, company_id: UUID, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    rows = await conn.fetch(
        """SELECT id, user_id, method, path, resource_id, status, ip, request_id, created_at,
                  count(*) OVER () AS total
           FROM audit_log WHERE company_id = $1
           ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3""",
        company_id,
        limit,
        offset,
    )
    if rows:
        return [{k: v for k, v in r.items() if k != "total"} for r in rows], rows[0]["total"]
    total = await conn.fetchval("SELECT count(*) FROM audit_log WHERE company_id = $1", company_id)
    return [], total
