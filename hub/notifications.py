"""The one way to notify staff: stores a notification per recipient and, once
the transaction commits, publishes `notification.created` so the dashboard
can show it live."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

import asyncpg

from hub.db import Database
from hub.events import Event

DEFAULT_ROLES = ("owner", "admin")


async def notify(
    db: Database,
    conn: asyncpg.Connection,
    *,
    company_id: UUID,
    type: str,
    title: str,
    body: str | None = None,
    data: dict[str, Any] | None = None,
    user_ids: Iterable[UUID] | None = None,
    roles: Iterable[str] | None = None,
) -> list[dict[str, Any]]:
    """Notify the given users, or every user with one of `roles` (default:
    owners and admins). Runs in the caller's transaction."""
    if user_ids is None:
        user_ids = [
            r["id"]
            for r in await conn.fetch(
                "SELECT id FROM users WHERE company_id = $1 AND role = ANY($2::text[])",
                company_id,
                list(roles or DEFAULT_ROLES),
            )
        ]
    user_ids = list(dict.fromkeys(user_ids))
    if not user_ids:
        return []
    rows = await conn.fetch(
        """INSERT INTO notifications (company_id, user_id, type, title, body, data)
           SELECT $1, u, $3, $4, $5, $6 FROM unnest($2::uuid[]) AS u
           RETURNING id, user_id, type, title, body, data, read, created_at""",
        company_id,
        user_ids,
        type,
        title,
        body,
        data or {},
    )
    created = [dict(r) for r in rows]
    for notification in created:
        db.publish_after_commit(conn, Event("notification.created", company_id, notification))
    return created
