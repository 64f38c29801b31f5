"""`/widget`: a visitor's connection to one conversation."""

from __future__ import annotations

import weakref
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from http_api.realtime.namespace import FloodGuard, Namespace, refuse
from hub.conversations import send_visitor_message
from hub.errors import ApiError
from hub.events import Event, conversation_topic
from hub.inputs import MAX_SEQ, NewVisitorMessage, validated
from hub.shapes import visible_to_visitor, visitor_view
from hub.store import conversations, messages
from hub.visitors import ConversationGrant, check_grant_key, verify_conversation_token

RESUME_LIMIT = 500


def room(conversation_id: UUID | str) -> str:
    return f"conversation:{conversation_id}"


def key_room(key_id: UUID | str) -> str:
    """The sockets connected with one publishable key: cut when it is revoked."""
    return f"key:{key_id}"


class Typing(BaseModel):
    model_config = ConfigDict(extra="forbid")
    typing: bool


class Resume(BaseModel):
    model_config = ConfigDict(extra="forbid")
    after_seq: int = Field(ge=0, le=MAX_SEQ)


class WidgetNamespace(Namespace):
    events = {
        "message:send": "send",
        "typing": "typing",
        "conversation:resume": "resume",
    }

    def __init__(self, realtime) -> None:
        super().__init__("/widget", realtime)
        # The message limit is a conversation's, shared by all its connections
        # here (more tabs are no more messages); a guard lives while they do.
        self._floods: weakref.WeakValueDictionary[UUID, FloodGuard] = weakref.WeakValueDictionary()

    async def on_connect(self, sid: str, environ: dict, auth: Any) -> None:
        services = self.services
        try:
            token = auth.get("token") if isinstance(auth, dict) else None
            # verify_visitor's checks, in one read as the conversation's company.
            grant = verify_conversation_token(services.settings, token)
            async with services.db.read(grant.company_id) as conn:
                exists = await check_grant_key(conn, grant, environ.get("HTTP_ORIGIN"))
            if not exists:
                raise ApiError.unauthorized("The conversation no longer exists", "INVALID_TOKEN")
        except ApiError as error:
            raise refuse(error) from None
        flood = self._floods.get(grant.conversation_id)
        if flood is None:
            flood = FloodGuard(services.settings.socket_messages_per_minute)
            self._floods[grant.conversation_id] = flood
        await self.save_session(sid, {"grant": grant, "flood": flood})
        # Subscribed before the socket joins its room: from here on, nothing
        # published about its conversation passes this process by.
        await services.events.follow(conversation_topic(grant.conversation_id))
        await self.enter_room(sid, room(grant.conversation_id))
        await self.enter_room(sid, key_room(grant.key_id))

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        session = await self.get_session(sid)
        grant: ConversationGrant | None = session.get("grant")
        if grant is not None:
            await self.services.events.unfollow(conversation_topic(grant.conversation_id))

    async def _grant(self, sid: str) -> tuple[ConversationGrant, FloodGuard]:
        session = await self.get_session(sid)
        return session["grant"], session["flood"]

    async def send(self, sid: str, payload: Any) -> dict[str, Any]:
        grant, flood = await self._grant(sid)
        if not flood.allow():
            raise ApiError.rate_limited(
                "Too many messages; wait a moment", limit_per_minute=flood.limit
            )
        body = validated(NewVisitorMessage, payload)
        message = await send_visitor_message(self.services, grant, body)
        return {"ok": True, "message": visitor_view(message)}

    async def typing(self, sid: str, payload: Any) -> dict[str, Any]:
        grant, _ = await self._grant(sid)
        body: Typing = validated(Typing, payload)
        await self.services.events.publish(
            Event(
                "visitor.typing",
                grant.company_id,
                {"conversation_id": grant.conversation_id, "typing": body.typing},
            )
        )
        return {"ok": True}

    async def resume(self, sid: str, payload: Any) -> dict[str, Any]:
        grant, _ = await self._grant(sid)
        body: Resume = validated(Resume, payload)
        async with self.services.db.read(grant.company_id) as conn:
            conversation = await conversations.get(conn, grant.conversation_id)
            missed = await messages.page(
                conn, grant.conversation_id, limit=RESUME_LIMIT, after_seq=body.after_seq
            )
        if conversation is None:
            raise ApiError.unauthorized("The conversation no longer exists", "INVALID_TOKEN")
        return {
            "ok": True,
            # A widget coming back to an ended conversation starts a new one to write in.
            "status": conversation["status"],
            "messages": [visitor_view(m) for m in missed if visible_to_visitor(m)],
        }
