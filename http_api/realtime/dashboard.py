"""`/dashboard`: staff watching their company's conversations live."""

from __future__ import annotations

import logging
import uuid
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from http_api.realtime.namespace import FloodGuard, Namespace, refuse
from hub.auth import Principal
from hub.conversations import send_staff_message, set_takeover
from hub.db.database import CONNECTION_ERRORS
from hub.errors import ApiError, found
from hub.events import company_topic, conversation_topic
from hub.inputs import NewStaffSocketMessage, validated
from hub.shapes import conversation_view, staff_view
from hub.store import audit, conversations

log = logging.getLogger(__name__)


def company_room(company_id: UUID | str) -> str:
    return f"company:{company_id}"


def user_room(user_id: UUID | str) -> str:
    return f"user:{user_id}"


def watch_room(conversation_id: UUID | str) -> str:
    """The dashboards that have a conversation open: its deltas and typing go here."""
    return f"watch:{conversation_id}"


class ConversationRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    conversation_id: UUID


class DashboardNamespace(Namespace):
    events = {
        "conversation:takeover": "takeover",
        "conversation:release": "release",
        "message:send": "send",
        "conversation:watch": "watch",
        "conversation:unwatch": "unwatch",
    }
    # Reading, not acting: not written to the audit log.
    unaudited = frozenset({"conversation:watch", "conversation:unwatch"})

    def __init__(self, realtime) -> None:
        super().__init__("/dashboard", realtime)

    async def on_connect(self, sid: str, environ: dict, auth: Any) -> None:
        services = self.services
        token = auth.get("token") if isinstance(auth, dict) else None
        try:
            if not token:
                raise ApiError.unauthorized("A staff token is required", "INVALID_TOKEN")
            principal = await services.authenticate(token)
        except ApiError as error:
            raise refuse(error) from None
        limit = services.settings.socket_messages_per_minute
        ip = self.client_address(environ)
        await self.save_session(
            sid,
            {"principal": principal, "flood": FloodGuard(limit * 3), "ip": ip, "watching": set()},
        )
        await services.events.follow(company_topic(principal.company_id))
        await self.enter_room(sid, company_room(principal.company_id))
        await self.enter_room(sid, user_room(principal.user_id))

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        session = await self.get_session(sid)
        principal: Principal | None = session.get("principal")
        if principal is None:
            return
        events = self.services.events
        for conversation_id in session["watching"]:
            await events.unfollow(conversation_topic(conversation_id))
        session["watching"].clear()
        await events.unfollow(company_topic(principal.company_id))

    async def handled(self, sid: str, event: str, payload: Any, status: int) -> None:
        """Every staff action is in the audit log, as its REST twin would be:
        method `SOCKET`, path `/dashboard/<event>`, the conversation as the resource."""
        if event not in self.events or event in self.unaudited:
            return
        session = await self.get_session(sid)
        principal: Principal = session["principal"]
        conversation = payload.get("conversation_id") if isinstance(payload, dict) else None
        try:
            async with self.services.db.tenant(principal.company_id) as conn:
                await audit.record(
                    conn,
                    company_id=principal.company_id,
                    user_id=principal.user_id,
                    method="SOCKET",
                    path=f"/dashboard/{event}",
                    resource_id=str(conversation)[:100] if conversation else None,
                    status=status,
                    ip=session["ip"],
                    request_id=uuid.uuid4().hex,
                )
        except (ApiError, *CONNECTION_ERRORS):
            log.error('{"event":"audit_write_failed","socket_event":"%s"}', event)

    async def _principal(self, sid: str) -> tuple[Principal, FloodGuard]:
        session = await self.get_session(sid)
        return session["principal"], session["flood"]

    async def _takeover(self, sid: str, payload: Any, taken: bool) -> dict[str, Any]:
        principal, _ = await self._principal(sid)
        ref: ConversationRef = validated(ConversationRef, payload)
        db = self.services.db
        async with db.tenant(principal.company_id) as conn:
            conversation = await set_takeover(
                db,
                conn,
                company_id=principal.company_id,
                conversation_id=ref.conversation_id,
                user_id=principal.user_id,
                taken=taken,
            )
        return {"ok": True, "conversation": conversation_view(conversation)}

    async def takeover(self, sid: str, payload: Any) -> dict[str, Any]:
        return await self._takeover(sid, payload, True)

    async def release(self, sid: str, payload: Any) -> dict[str, Any]:
        return await self._takeover(sid, payload, False)

    async def watch(self, sid: str, payload: Any) -> dict[str, Any]:
        """A person opened a conversation: its reply streams and typing come
        to this socket from now on (the company's room has only news)."""
        principal, _ = await self._principal(sid)
        ref: ConversationRef = validated(ConversationRef, payload)
        async with self.services.db.tenant(principal.company_id) as conn:
            found(await conversations.get(conn, ref.conversation_id), "Conversation")
        watching: set[UUID] = (await self.get_session(sid))["watching"]
        if ref.conversation_id not in watching:
            watching.add(ref.conversation_id)
            await self.services.events.follow(conversation_topic(ref.conversation_id))
            await self.enter_room(sid, watch_room(ref.conversation_id))
        return {"ok": True, "conversation_id": str(ref.conversation_id)}

    async def unwatch(self, sid: str, payload: Any) -> dict[str, Any]:
        """The person left the conversation: no more of its stream. Only what
        this socket watches can be unwatched (so another company's
        conversation, which it can never watch, is not found either)."""
        await self._principal(sid)
        ref: ConversationRef = validated(ConversationRef, payload)
        watching: set[UUID] = (await self.get_session(sid))["watching"]
        if ref.conversation_id not in watching:
            raise ApiError.not_found("Watched conversation")
        watching.discard(ref.conversation_id)
        await self.leave_room(sid, watch_room(ref.conversation_id))
        await self.services.events.unfollow(conversation_topic(ref.conversation_id))
        return {"ok": True, "conversation_id": str(ref.conversation_id)}

    async def send(self, sid: str, payload: Any) -> dict[str, Any]:
        principal, flood = await self._principal(sid)
        if not flood.allow():
            raise ApiError.rate_limited(
                "Too many messages; wait a moment", limit_per_minute=flood.limit
            )
        body = validated(NewStaffSocketMessage, payload)
        message = await send_staff_message(self.services, principal, body.conversation_id, body)
        return {"ok": True, "message": staff_view(message)}
