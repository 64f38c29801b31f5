"""From domain events to Socket.IO emits, for the sockets of this process."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

from http_api.realtime.dashboard import company_room, user_room, watch_room
from http_api.realtime.widget import key_room, room
from hub.events import Event
from hub.shapes import staff_view, visible_to_visitor, visitor_view
from hub.store import notifications
from hub.visitors import invalid_key

if TYPE_CHECKING:
    from http_api.realtime.server import Realtime

WIDGET, DASHBOARD = "/widget", "/dashboard"


class Bridge:
    def __init__(self, realtime: Realtime) -> None:
        self.realtime = realtime
        self.routes = {
            "message.created": self._message,
            "message.delta": self._delta,
            "agent.typing": self._agent_typing,
            "visitor.typing": self._visitor_typing,
            "conversation.started": self._started,
            "conversation.updated": self._updated,
            "conversation.ended": self._ended,
            "conversation.takeover": self._takeover,
            "conversation.release": self._release,
            "conversation.handoff": self._handoff,
            "notification.created": self._notification,
            "notification.read": self._notification_read,
            "knowledge.queued": self._document,
            "knowledge.processing": self._document,
            "knowledge.changed": self._document,
            "key.revoked": self._key_revoked,
        }

    async def resync(self) -> None:
        """Events may have been lost on their way here: every client of this
        process fetches what it may have missed, as after a reconnect."""
        for namespace in (WIDGET, DASHBOARD):
            await self.realtime.sio.emit("sync", {}, namespace=namespace)

    async def deliver(self, event: Event) -> None:
        route = self.routes.get(event.type)
        if route is not None:
            await route(event, event.data)

    async def _emit(self, name: str, data: Any, room_name: str, namespace: str) -> None:
        await self.realtime.sio.emit(name, data, room=room_name, namespace=namespace)

    async def _message(self, event: Event, message: dict) -> None:
        conversation = message["conversation_id"]
        # The AI's reply closes its stream of deltas; everything else is news.
        name = "message:done" if message["sender_type"] == "agent" else "message:new"
        if visible_to_visitor(message):
            await self._emit(name, visitor_view(message), room(conversation), WIDGET)
        await self._emit(
            "message:new", staff_view(message), company_room(event.company_id), DASHBOARD
        )

    # A reply's stream and typing go to the dashboards that have the
    # conversation open (conversation:watch), not to the whole company.
    async def _delta(self, event: Event, data: dict) -> None:
        conversation = data["conversation_id"]
        await self._emit("message:delta", data, room(conversation), WIDGET)
        await self._emit("message:delta", data, watch_room(conversation), DASHBOARD)

    async def _agent_typing(self, event: Event, data: dict) -> None:
        conversation = data["conversation_id"]
        await self._emit("agent:typing", {"typing": data["typing"]}, room(conversation), WIDGET)
        await self._emit("agent:typing", data, watch_room(conversation), DASHBOARD)

    async def _visitor_typing(self, event: Event, data: dict) -> None:
        await self._emit("visitor:typing", data, watch_room(data["conversation_id"]), DASHBOARD)

    async def _started(self, event: Event, conversation: dict) -> None:
        await self._emit(
            "conversation:new", conversation, company_room(event.company_id), DASHBOARD
        )

    async def _updated(self, event: Event, conversation: dict) -> None:
        await self._emit(
            "conversation:updated", conversation, company_room(event.company_id), DASHBOARD
        )

    async def _ended(self, event: Event, conversation: dict) -> None:
        await self._emit("conversation:ended", conversation, room(conversation["id"]), WIDGET)

    async def _takeover(self, event: Event, data: dict) -> None:
        conversation = data["conversation_id"]
        payload = {"conversation_id": conversation}
        await self._emit("conversation:human_joined", payload, room(conversation), WIDGET)

    async def _release(self, event: Event, data: dict) -> None:
        conversation = data["conversation_id"]
        payload = {"conversation_id": conversation}
        await self._emit("conversation:human_left", payload, room(conversation), WIDGET)

    async def _handoff(self, event: Event, data: dict) -> None:
        payload = {"conversation_id": data["conversation_id"], "reason": data.get("reason")}
        await self._emit("handoff:requested", payload, company_room(event.company_id), DASHBOARD)

    async def _document(self, event: Event, data: dict) -> None:
        # Only the id: a `knowledge.changed` carries every vector id of the
        # document, which the dashboard has no use for; it reads the document.
        payload = {"document_id": data["document_id"]}
        await self._emit("document:updated", payload, company_room(event.company_id), DASHBOARD)

    async def _key_revoked(self, event: Event, data: dict) -> None:
        """A revoked key stops working at once: its sockets on this process are
        told why and disconnected (each process cuts its own)."""
        sio = self.realtime.sio
        error = invalid_key("This key has been revoked").body()
        sids = [sid for sid, _ in sio.manager.get_participants(WIDGET, key_room(data["key_id"]))]
        for sid in sids:
            await sio.emit("error", error, to=sid, namespace=WIDGET)
            await sio.disconnect(sid, namespace=WIDGET)

    async def _notification(self, event: Event, notification: dict) -> None:
        user = notification["user_id"]
        await self._emit("notification:new", notification, user_room(user), DASHBOARD)
        await self._unread(event.company_id, user)

    async def _notification_read(self, event: Event, data: dict) -> None:
        await self._unread(event.company_id, data["user_id"])

    async def _unread(self, company_id: UUID, user_id: str) -> None:
        # Only the process holding that user's sockets needs to count.
        if not self.realtime.sio.manager.rooms.get(DASHBOARD, {}).get(user_room(user_id)):
            return
        async with self.realtime.services.db.read(company_id) as conn:
            count = await notifications.unread_count(conn, UUID(str(user_id)))
        await self._emit("notification:unread", {"count": count}, user_room(user_id), DASHBOARD)
