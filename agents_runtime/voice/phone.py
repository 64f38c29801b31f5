"""Phone calls through Twilio Media Streams: the webhook that answers a
call (signature checked, number → tenant and agent, TwiML connecting the
call to a stream bound to it) and the stream itself, which runs the voice
agent like the browser transport (agents_runtime.voice.streams)."""

from __future__ import annotations

import time
from typing import Any

import asyncpg
from aiohttp import web

from agents_runtime.voice.streams import STREAMS, Session, converse, voice_socket
from agents_runtime.voice.wires import (
    StreamClosed,
    TwilioWire,
    json_object,
    read_twilio_frame,
)
from hub.conversations import start_conversation
from hub.errors import ApiError
from hub.services import SERVICES, Services
from hub.store import agents, voice_numbers
from hub.voice import twilio

START_TIMEOUT = 5.0  # seconds for a phone stream's `start` (Twilio sends it at once)


def _public_base(request: web.Request) -> str:
    settings = request.app[SERVICES].settings
    if settings.public_url:
        return settings.public_url.rstrip("/")
    return f"{request.scheme}://{request.host}"


async def twilio_incoming(request: web.Request) -> web.Response:
    """Twilio's voice webhook: a call to one of the hub's numbers. Answers
    TwiML connecting the call to a media stream bound to this call."""
    services: Services = request.app[SERVICES]
    settings = services.settings
    form = await request.post()
    params = {name: str(value) for name, value in form.items()}
    if not settings.twilio_auth_token:
        # Unsigned, anyone who knows a number could start calls on its
        # company's agent (and bill). There is no safe default: refuse.
        raise ApiError(
            503,
            "VOICE_NOT_CONFIGURED",
            "Phone calls through Twilio need TWILIO_AUTH_TOKEN (the account's auth token)",
        )
    url = _public_base(request) + request.path_qs
    given = request.headers.get("X-Twilio-Signature", "")
    if not twilio.valid_signature(settings.twilio_auth_token, url, params, given):
        raise ApiError(403, "INVALID_SIGNATURE", "The request is not signed by Twilio")
    called, call_sid = params.get("To", ""), params.get("CallSid", "")
    if not call_sid:
        raise ApiError.validation({"CallSid": "required"})
    async with services.db.system() as conn:  # the number names the tenant
        route = await voice_numbers.find(conn, called)
        agent = await agents.get(conn, route["agent_id"]) if route else None
    if route is None:
        raise ApiError.not_found("Phone number", phone_number=called)
    if agent is None or not agent["enabled"]:
        raise ApiError.not_found("Agent")
    grant = twilio.StreamGrant(
        route["company_id"], route["agent_id"], call_sid, called, params.get("From")
    )
    base = _public_base(request).replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    twiml = twilio.connect_twiml(
        f"{base}/voice/twilio/stream", twilio.mint_stream_token(settings, grant)
    )
    return web.Response(text=twiml, content_type="text/xml")


@voice_socket
async def twilio_stream(request: web.Request, ws: web.WebSocketResponse) -> None:
    """The call's media stream, opened by Twilio after our TwiML."""
    services: Services = request.app[SERVICES]
    start = await _twilio_start(ws)
    params = start.get("customParameters") or {}
    try:
        grant = twilio.verify_stream_token(services.settings, params.get("token"))
    except twilio.InvalidStreamToken as exc:
        raise ApiError.unauthorized(str(exc), "INVALID_TOKEN") from None
    if start.get("callSid") != grant.call_sid:
        raise ApiError.unauthorized("The stream belongs to another call", "INVALID_TOKEN")
    agent = await _routed_agent(services, grant)
    wire = TwilioWire(ws, str(start.get("streamSid") or ""))
    streams = request.app[STREAMS]
    session = Session(services, streams.llm, ws, wire, twilio.SAMPLE_RATE, read_twilio_frame)
    async with streams.slots.hold(grant.company_id, f"call:{grant.call_sid}") as refusal:
        if refusal is not None:
            raise ApiError(refusal.status, refusal.code, refusal.message)
        try:
            conversation = await _start_call(services, grant, wire.stream_sid)
        except asyncpg.UniqueViolationError:
            raise ApiError.conflict(
                "This call's stream was opened already", call=grant.call_sid
            ) from None
        await converse(session, agent, conversation)


async def _start_call(services: Services, grant: twilio.StreamGrant, stream_sid: str) -> dict:
    """The call's conversation; once per call (a unique index on its CallSid)."""
    db = services.db
    async with db.tenant(grant.company_id) as conn:
        return await start_conversation(
            db,
            conn,
            company_id=grant.company_id,
            agent_id=grant.agent_id,
            channel="phone",
            metadata={
                "source": "twilio",
                "call_sid": grant.call_sid,
                "stream_sid": stream_sid,
                "called_number": grant.called,
                "caller_number": grant.caller,
            },
        )


async def _twilio_start(ws: web.WebSocketResponse) -> dict[str, Any]:
    """Twilio sends `connected`, then `start`; anything else first is refused."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            msg = await ws.receive(timeout=max(deadline - time.monotonic(), 0.001))
        except TimeoutError:
            raise ApiError.bad_request("MALFORMED_FRAME", "No start message") from None
        try:
            message = json_object(msg)
        except StreamClosed as exc:
            raise ApiError.bad_request("MALFORMED_FRAME", exc.reason) from None
        event = message.get("event")
        if event == "connected":
            continue
        if event == "start" and isinstance(message.get("start"), dict):
            return {**message["start"], "streamSid": message.get("streamSid")}
        raise ApiError.bad_request("MALFORMED_FRAME", "The stream must begin with start")


async def _routed_agent(services: Services, grant: twilio.StreamGrant) -> dict:
    """The number must still route to the agent the webhook named."""
    async with services.db.tenant(grant.company_id) as conn:
        route = await voice_numbers.find(conn, grant.called)
        agent = await agents.get(conn, grant.agent_id)
    if route is None or route["agent_id"] != grant.agent_id:
        raise ApiError.forbidden("The number no longer routes to this agent")
    if agent is None or not agent["enabled"]:
        raise ApiError.not_found("Agent")
    return agent
