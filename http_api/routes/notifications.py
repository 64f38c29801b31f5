"""Notifications (seed: Notification APIs), per user."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel

from http_api.routes import api
from http_api.routing import Call
from http_api.schemas import Page
from hub.errors import found
from hub.events import Event
from hub.store import notifications


class NotificationQuery(Page):
    read: bool | None = None


class Notification(BaseModel):
    id: UUID
    type: str
    title: str
    body: str | None
    data: dict[str, Any]
    read: bool
    read_at: datetime | None
    created_at: datetime


class NotificationPage(BaseModel):
    notifications: list[Notification]
    total: int


class Updated(BaseModel):
    updated: int


class UnreadCount(BaseModel):
    count: int


def _read_event(call: Call, conn) -> None:
    # Lets the user's other dashboards update their unread count.
    call.services.db.publish_after_commit(
        conn,
        Event("notification.read", call.user.company_id, {"user_id": call.user.user_id}),
    )


@api.get(
    "/api/notifications",
    query=NotificationQuery,
    response=NotificationPage,
    tags=("notifications",),
)
async def list_notifications(call: Call) -> dict:
    """The caller's notifications, newest first; `read` filters."""
    q: NotificationQuery = call.query
    async with call.tenant() as conn:
        rows, total = await notifications.page(
            conn, call.user.user_id, limit=q.limit, offset=q.offset, read=q.read
        )
    return {"notifications": rows, "total": total}


@api.post("/api/notifications/read-all", response=Updated, tags=("notifications",))
async def read_all(call: Call) -> dict:
    """Mark every notification of the caller read."""
    async with call.tenant() as conn:
        updated = await notifications.mark_all_read(conn, call.user.user_id)
        _read_event(call, conn)
    return {"updated": updated}


@api.get("/api/notifications/unread-count", response=UnreadCount, tags=("notifications",))
async def unread_count(call: Call) -> dict:
    """How many of the caller's notifications are unread."""
    async with call.tenant() as conn:
        return {"count": await notifications.unread_count(conn, call.user.user_id)}


@api.post("/api/notifications/{id}/read", response=Notification, tags=("notifications",))
async def read_one(call: Call) -> dict:
    """Mark one notification read."""
    async with call.tenant() as conn:
        notification = found(
            await notifications.mark_read(conn, call.user.user_id, call.params["id"]),
            "Notification",
        )
        _read_event(call, conn)
    return notification
