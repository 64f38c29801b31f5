"""Voice on LiveKit (seed: LiveKit Integration, Voice Bot Deployment): join
tokens for visitors and staff, and deploying the voice agent to a call's room
or to a phone number. Without LiveKit configured every route here answers
503 VOICE_NOT_CONFIGURED."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, StringConstraints

from http_api.routes import api
from http_api.routing import RESOURCE_ID, Call, visitor_metadata
from http_api.schemas import QueryModel, RequestModel
from hub.conversations import start_conversation
from hub.errors import ApiError, found
from hub.store import agents, conversations, voice_numbers
from hub.visitors import ConversationGrant, mint_conversation_token, verify_conversation_token
from hub.voice import claims
from hub.voice.conversations import joinable
from hub.voice.livekit import LiveKit, configured, new_identity, require, room_for

VOICE_ERRORS = (404, 409, 502, 503)
# E.164: a plus, a country code, at most 15 digits in all.
PhoneNumber = Annotated[str, StringConstraints(pattern=r"^\+[1-9][0-9]{6,14}$")]
CALL_CLAIMS_TTL = 24 * 3600  # a dispatch names its call for a day; calls are shorter
VISITOR = {"auth": "key", "rate_limit": "public", "tags": ("public", "voice")}


class VisitorTokenQuery(QueryModel):
    agent_id: UUID
    conversation_id: UUID | None = None


class StaffTokenQuery(QueryModel):
    conversation_id: UUID
    # listen: hidden and silent; takeover: may speak (pause the AI with the
    # dashboard's conversation:takeover so it stops answering).
    mode: Literal["listen", "takeover"] = "listen"


class JoinToken(BaseModel):
    token: str
    url: str
    room: str
    identity: str
    conversation_id: UUID
    conversation_token: str | None = None  # visitors: for the conversation's REST routes


class Deploy(RequestModel):
    agent_id: UUID
    conversation_id: UUID | None = None
    phone_number: PhoneNumber | None = None


class Dispatch(BaseModel):
    id: str
    agent_name: str
    room: str


class Deployed(BaseModel):
    agent_id: UUID
    conversation_id: UUID | None
    conversation_token: str | None = None
    room: str | None
    dispatch: Dispatch | None
    phone_number: str | None
    sip_trunk_id: str | None
    sip_dispatch_rule_id: str | None
    created: list[str]  # what this call created: conversation, dispatch, sip_inbound_trunk, ...
    updated: list[str]


async def _voice_conversation(
    call: Call, company_id: UUID, agent_id: UUID, conversation_id: UUID | None
) -> tuple[dict, bool]:
    """The active voice conversation named, or a new one; (conversation, created)."""
    db = call.services.db
    async with db.tenant(company_id) as conn:
        found(await agents.get_enabled(conn, agent_id), "Agent")
        if conversation_id is not None:
            conversation = await joinable(
                conn, conversation_id, agent_id=agent_id, channels=("voice", "phone")
            )
            return conversation, False
        conversation = await start_conversation(
            db,
            conn,
            company_id=company_id,
            agent_id=agent_id,
            channel="voice",
            metadata=visitor_metadata(call.request, "livekit")
            if call.key is not None
            else {"source": "api"},
        )
        return conversation, True


def _visitor_conversation(call: Call, conversation_id: UUID | None) -> None:
    """A visitor names a conversation only with its conversation token."""
    if conversation_id is None:
        return
    grant = verify_conversation_token(
        call.services.settings, call.request.headers.get("X-Conversation-Token")
    )
    key = call.key
    if grant.conversation_id != conversation_id or (key and grant.agent_id != key.agent_id):
        raise ApiError.not_found("Conversation")


def _call_claims(call: Call, company_id: UUID, agent_id: UUID, conversation_id: UUID) -> str:
    return claims.sign(
        call.services.settings,
        claims.CallClaims(company_id, agent_id, "voice", conversation_id=conversation_id),
        ttl=CALL_CLAIMS_TTL,
    )


def _visitor_token(call: Call, conversation: dict) -> str:
    key = call.key
    assert key is not None
    grant = ConversationGrant(conversation["id"], key.company_id, key.agent_id, key.id)
    return mint_conversation_token(call.services.settings, grant)[0]


@api.get(
    "/public/livekit/token",
    query=VisitorTokenQuery,
    response=JoinToken,
    errors=VOICE_ERRORS,
    **VISITOR,
)
async def visitor_token(call: Call) -> dict:
    """A token to join a voice call with the agent (publishable key). Without
    `conversation_id` a voice conversation is started; with it, send its
    X-Conversation-Token. The token joins that conversation's room only, and
    the room dispatches the voice agent."""
    require(call.services.settings)
    q: VisitorTokenQuery = call.query
    key = call.key
    assert key is not None
    if q.agent_id != key.agent_id:  # a key speaks for its own agent only
        raise ApiError.not_found("Agent")
    _visitor_conversation(call, q.conversation_id)
    conversation, _ = await _voice_conversation(call, key.company_id, q.agent_id, q.conversation_id)
    room = room_for(conversation["id"])
    identity = new_identity("visitor", conversation["id"])
    token = LiveKit(call.services.settings).join_token(
        room=room,
        identity=identity,
        name="Visitor",
        dispatch_metadata=_call_claims(call, key.company_id, q.agent_id, conversation["id"]),
    )
    call.request[RESOURCE_ID] = str(conversation["id"])
    return {
        "token": token,
        "url": call.services.settings.livekit_url,
        "room": room,
        "identity": identity,
        "conversation_id": conversation["id"],
        "conversation_token": _visitor_token(call, conversation),
    }


@api.get(
    "/api/livekit/token",
    query=StaffTokenQuery,
    response=JoinToken,
    errors=VOICE_ERRORS,
    tags=("voice",),
)
async def staff_token(call: Call) -> dict:
    """A token for staff to listen in on a call (hidden, silent) or to take
    it over (may speak)."""
    require(call.services.settings)
    q: StaffTokenQuery = call.query
    async with call.tenant() as conn:
        conversation = found(await conversations.get(conn, q.conversation_id), "Conversation")
    if conversation["channel"] not in ("voice", "phone"):
        raise ApiError.conflict("Not a voice conversation", channel=conversation["channel"])
    room = conversation["metadata"].get("livekit_room") or room_for(conversation["id"])
    identity = new_identity("staff", call.user.user_id)
    takeover = q.mode == "takeover"
    token = LiveKit(call.services.settings).join_token(
        room=room,
        identity=identity,
        name=call.user.email or "Staff",
        can_publish=takeover,
        hidden=not takeover,
    )
    return {
        "token": token,
        "url": call.services.settings.livekit_url,
        "room": room,
        "identity": identity,
        "conversation_id": conversation["id"],
    }


async def _deploy(call: Call, company_id: UUID, body: Deploy) -> dict:
    livekit = LiveKit(call.services.settings)
    result: dict = {
        "agent_id": body.agent_id,
        "conversation_id": None,
        "room": None,
        "dispatch": None,
        "phone_number": body.phone_number,
        "sip_trunk_id": None,
        "sip_dispatch_rule_id": None,
        "created": [],
        "updated": [],
    }
    if body.phone_number is not None:
        await _route_number(call, livekit, company_id, body.agent_id, body.phone_number, result)
        if body.conversation_id is None:
            return result
    conversation, created = await _voice_conversation(
        call, company_id, body.agent_id, body.conversation_id
    )
    if created:
        result["created"].append("conversation")
        if call.key is not None:
            result["conversation_token"] = _visitor_token(call, conversation)
    room = conversation["metadata"].get("livekit_room") or room_for(conversation["id"])
    dispatch, made = await livekit.ensure_dispatch(
        room, _call_claims(call, company_id, body.agent_id, conversation["id"])
    )
    if made:
        result["created"].append("dispatch")
    result.update(
        conversation_id=conversation["id"],
        room=room,
        dispatch={"id": dispatch.id, "agent_name": dispatch.agent_name, "room": dispatch.room},
    )
    call.request[RESOURCE_ID] = str(conversation["id"])
    return result


async def _route_number(
    call: Call, livekit: LiveKit, company_id: UUID, agent_id: UUID, number: str, result: dict
) -> None:
    """Route the number to the agent. The number's row stays locked while
    LiveKit is told, so two deploys of one number cannot interleave, and a
    LiveKit failure leaves the row as it was."""
    db = call.services.db
    async with db.tenant(company_id) as conn:
        found(await agents.get(conn, agent_id), "Agent")
        row = await voice_numbers.claim(conn, company_id, agent_id, number)
        if row is None:
            raise ApiError.conflict("This phone number is routed by another company")
        metadata = claims.sign(
            call.services.settings,
            claims.CallClaims(company_id, agent_id, "phone", phone_number=number),
            ttl=None,
        )
        route = await livekit.route_number(
            number,
            metadata,
            trunk_id=row["sip_trunk_id"],
            dispatch_rule_id=row["sip_dispatch_rule_id"],
            label=f"syntera {company_id} {number}",
        )
        try:
            await voice_numbers.set_route(
                conn,
                row["id"],
                agent_id=agent_id,
                sip_trunk_id=route.trunk_id,
                sip_dispatch_rule_id=route.dispatch_rule_id,
            )
        except BaseException:
            await livekit.unroute_number(
                route.trunk_id if "sip_inbound_trunk" in route.created else None,
                route.dispatch_rule_id if "sip_dispatch_rule" in route.created else None,
            )
            raise
    result.update(sip_trunk_id=route.trunk_id, sip_dispatch_rule_id=route.dispatch_rule_id)
    result["created"] += route.created
    result["updated"] += route.updated


@api.post(
    "/public/voice-bot/deploy",
    body=Deploy,
    response=Deployed,
    errors=VOICE_ERRORS,
    **VISITOR,
)
async def visitor_deploy(call: Call) -> dict:
    """Make sure the voice agent is dispatched to a call's room (publishable
    key; with `conversation_id`, its X-Conversation-Token). Phone numbers are
    staff business: `phone_number` is refused here."""
    require(call.services.settings)
    body: Deploy = call.body
    key = call.key
    assert key is not None
    if body.agent_id != key.agent_id:
        raise ApiError.not_found("Agent")
    if body.phone_number is not None:
        raise ApiError.forbidden("Phone numbers are routed by staff: POST /api/voice-bot/deploy")
    _visitor_conversation(call, body.conversation_id)
    return await _deploy(call, key.company_id, body)


@api.post(
    "/api/voice-bot/deploy",
    body=Deploy,
    response=Deployed,
    errors=(*VOICE_ERRORS, 403),
    tags=("voice",),
)
async def staff_deploy(call: Call) -> dict:
    """Deploy the voice agent: dispatch it to a conversation's room (a new
    voice conversation without `conversation_id`), and/or route a phone number
    to it through a LiveKit SIP inbound trunk and dispatch rule (owners and
    admins; a number belongs to one company). Without LiveKit, a number (and
    nothing else) can still be routed: for Twilio media streams."""
    body: Deploy = call.body
    streams_only = not configured(call.services.settings)
    if not streams_only or body.phone_number is None or body.conversation_id is not None:
        require(call.services.settings)
    if body.phone_number is not None and not call.user.can("owner", "admin"):
        raise ApiError.forbidden("Routing a phone number needs the role owner or admin")
    if streams_only:
        return await _route_number_for_streams(call, call.user.company_id, body)
    return await _deploy(call, call.user.company_id, body)


async def _route_number_for_streams(call: Call, company_id: UUID, body: Deploy) -> dict:
    """The number's row only: Twilio's webhook (POST /voice/twilio/incoming)
    finds the agent through it; no LiveKit trunk or rule exists to update."""
    assert body.phone_number is not None
    async with call.tenant() as conn:
        found(await agents.get(conn, body.agent_id), "Agent")
        existing = await voice_numbers.find(conn, body.phone_number)
        row = await voice_numbers.claim(conn, company_id, body.agent_id, body.phone_number)
        if row is None:
            raise ApiError.conflict("This phone number is routed by another company")
        if existing is not None and existing["agent_id"] != body.agent_id:
            await voice_numbers.set_route(
                conn,
                row["id"],
                agent_id=body.agent_id,
                sip_trunk_id=row["sip_trunk_id"],
                sip_dispatch_rule_id=row["sip_dispatch_rule_id"],
            )
    return {
        "agent_id": body.agent_id,
        "conversation_id": None,
        "room": None,
        "dispatch": None,
        "phone_number": body.phone_number,
        "sip_trunk_id": row["sip_trunk_id"],
        "sip_dispatch_rule_id": row["sip_dispatch_rule_id"],
        "created": [] if existing is not None else ["voice_number"],
        "updated": ["voice_number"] if existing and existing["agent_id"] != body.agent_id else [],
    }
