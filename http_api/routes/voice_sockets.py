"""Voice without a LiveKit server: the browser's voice WebSocket and Twilio's
webhook and media stream (docs/voice.md). These are the ways in: each
upgrades, authenticates, holds a session slot and finds or starts the
conversation, then hands the socket to the voice agent (`VoiceCalls`, which
hub/app.py supplies from agents_runtime.voice.streams) in this process.

The session runs in the web process the socket reached (docs/voice.md says
why): each process caps how many it runs, each company how many it has
(hub.voice.slots). Once a socket is upgraded an HTTP error can no longer be
sent, so a refusal is a JSON text frame `{"type": "error", "error", "code",
"details"}` and then a close whose code and reason say the same.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

import asyncpg
import orjson
from aiohttp import WSMsgType, web

from http_api.routes import api
from http_api.routing import Call, public_base
from hub.conversations import start_conversation
from hub.errors import ApiError, found
from hub.events import Event
from hub.inputs import refuse_unstorable
from hub.ratelimit import count_socket_connect
from hub.services import SERVICES, Services
from hub.store import agents, voice_numbers
from hub.visitors import ConversationGrant, invalid_key, verify_visitor
from hub.voice import twilio
from hub.voice.conversations import joinable
from hub.voice.slots import VoiceSlots

log = logging.getLogger(__name__)

# The largest frame either socket takes: a browser's audio frame is at most
# one second of 16 kHz PCM (32 000 bytes), Twilio's media messages ~300 bytes.
MAX_FRAME = 64 * 1024
START_TIMEOUT = 5.0  # seconds for a phone stream's `start` (Twilio sends it at once)


class VoiceCalls(Protocol):
    """The voice agent, as the sockets need it: run an accepted call to its end."""

    def warm(self, phone: bool) -> None:
        """A call is coming: start loading its speech models, return at once."""

    async def browser_call(
        self, ws: web.WebSocketResponse, agent: dict, conversation: dict
    ) -> None: ...

    async def phone_call(
        self, ws: web.WebSocketResponse, stream_sid: str, agent: dict, conversation: dict
    ) -> None: ...

    async def aclose(self) -> None:
        """The process stops: its calls have ended."""


@dataclass
class VoiceSockets:
    """What the process's voice sockets share: the session caps, the agent
    that runs the calls, and the browser sockets by publishable key, so that
    a revoked key cuts its calls."""

    slots: VoiceSlots
    calls: VoiceCalls
    by_key: dict[UUID, set[web.WebSocketResponse]] = field(default_factory=lambda: defaultdict(set))

    async def on_event(self, event: Event) -> None:
        if event.type != "key.revoked":
            return
        for ws in list(self.by_key.pop(UUID(event.data["key_id"]), ())):
            await refuse(ws, invalid_key("This key has been revoked"))


SOCKETS = web.AppKey("voice_sockets", VoiceSockets)


def install(app: web.Application, open_calls: Callable[[Services], VoiceCalls]) -> None:
    """The sockets' shared state, made once the services exist; `open_calls`
    builds the voice agent (it loads the speech models)."""

    async def sockets_ctx(app: web.Application) -> AsyncIterator[None]:
        services = app[SERVICES]
        settings = services.settings
        slots = VoiceSlots(
            settings.voice_sessions_per_company,
            settings.voice_sessions_per_process,
            services.redis,
            settings.redis_prefix,
        )
        sockets = app[SOCKETS] = VoiceSockets(slots, open_calls(services))
        services.events.subscribe(sockets.on_event)
        yield
        services.events.unsubscribe(sockets.on_event)
        await sockets.calls.aclose()

    app.cleanup_ctx.append(sockets_ctx)


_CLOSE_FOR_STATUS = {401: 4401, 403: 4403, 404: 4404, 409: 4409, 429: 4429, 500: 1011, 503: 1013}


def voice_socket(
    handler: Callable[[web.Request, web.WebSocketResponse], Awaitable[None]],
) -> Callable[[Call], Awaitable[web.WebSocketResponse]]:
    """A voice socket's route: the handler gets the upgraded socket. An
    ApiError, or anything that fails unexpectedly (1011), closes the socket
    with its reason."""

    @functools.wraps(handler)
    async def route(call: Call) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=MAX_FRAME, heartbeat=20)
        await ws.prepare(call.request)
        try:
            await handler(call.request, ws)
        except ApiError as error:
            await refuse(ws, error)
        except Exception:
            log.exception('{"event":"voice_socket_failed","path":"%s"}', call.request.path)
            await refuse(ws, ApiError(500, "INTERNAL_ERROR", "The voice session failed"))
        return ws

    return route


async def refuse(ws: web.WebSocketResponse, error: ApiError) -> web.WebSocketResponse:
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.send_json({"type": "error", **error.body()})
        await ws.close(
            code=_CLOSE_FOR_STATUS.get(error.status, 4400),
            message=f"{error.code}: {error.message}"[:120].encode(),
        )
    return ws


# -- the browser -------------------------------------------------------------------


@api.get(
    "/public/voice/ws",
    tags=("voice",),
    auth="none",
    rate_limit="none",  # connection attempts per address are counted below
    websocket=True,
    summary=(
        "A voice conversation's audio over a WebSocket (`?token=<conversation token>`;"
        " protocol in docs/voice.md)"
    ),
)
@voice_socket
async def browser_socket(request: web.Request, ws: web.WebSocketResponse) -> None:
    services: Services = request.app[SERVICES]
    await count_socket_connect(services, request.remote, request.headers.get("X-Forwarded-For"))
    grant = await verify_visitor(
        services.db, services.settings, request.query.get("token"), request.headers.get("Origin")
    )
    sockets = request.app[SOCKETS]
    sockets.calls.warm(phone=False)  # loads while the conversation is looked up
    agent, conversation = await _browser_conversation(services, grant)
    async with sockets.slots.hold(grant.company_id, str(conversation["id"])) as refusal:
        if refusal is not None:
            raise ApiError(refusal.status, refusal.code, refusal.message)
        sockets.by_key[grant.key_id].add(ws)
        try:
            await sockets.calls.browser_call(ws, agent, conversation)
        finally:
            sockets.by_key.get(grant.key_id, set()).discard(ws)


async def _browser_conversation(services: Services, grant: ConversationGrant) -> tuple[dict, dict]:
    async with services.db.tenant(grant.company_id) as conn:
        agent = found(await agents.get_enabled(conn, grant.agent_id), "Agent")
        conversation = await joinable(
            conn, grant.conversation_id, agent_id=grant.agent_id, channels=("voice",)
        )
    return agent, conversation


# -- phone calls through Twilio Media Streams --------------------------------------


@api.post(
    "/voice/twilio/incoming",
    tags=("voice",),
    auth="none",
    # Twilio's own addresses call it for every caller: its signature, not a
    # per-address budget, is what keeps others out.
    rate_limit="none",
    produces="text/xml",
    form=True,
    errors=(400, 403, 404, 503),
)
async def twilio_incoming(call: Call) -> web.Response:
    """Twilio's voice webhook: a call to one of the hub's numbers. Answers
    TwiML connecting the call to a media stream bound to this call (signed
    with TWILIO_AUTH_TOKEN; docs/voice.md)."""
    request, services = call.request, call.services
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
    url = public_base(request) + request.path_qs
    given = request.headers.get("X-Twilio-Signature", "")
    if not twilio.valid_signature(settings.twilio_auth_token, url, params, given):
        raise ApiError(403, "INVALID_SIGNATURE", "The request is not signed by Twilio")
    refuse_unstorable(params)  # the numbers and ids are looked up and stored
    called, call_sid = params.get("To", ""), params.get("CallSid", "")
    if not call_sid:
        raise ApiError.validation({"CallSid": "required"})
    async with services.db.system() as conn:  # the number names the tenant
        route = found(await voice_numbers.find(conn, called), "Phone number", phone_number=called)
        found(await agents.get_enabled(conn, route["agent_id"]), "Agent")
    grant = twilio.StreamGrant(
        route["company_id"], route["agent_id"], call_sid, called, params.get("From")
    )
    # Twilio opens the media stream about a second after this answer.
    request.app[SOCKETS].calls.warm(phone=True)
    base = public_base(request).replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    twiml = twilio.connect_twiml(
        f"{base}/voice/twilio/stream", twilio.mint_stream_token(settings, grant)
    )
    return web.Response(text=twiml, content_type="text/xml")


@api.get(
    "/voice/twilio/stream",
    tags=("voice",),
    auth="none",
    rate_limit="none",  # opened by Twilio with the token our TwiML gave it
    websocket=True,
    summary="A phone call's media stream, opened by Twilio after the webhook's TwiML",
)
@voice_socket
async def twilio_stream(request: web.Request, ws: web.WebSocketResponse) -> None:
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
    stream_sid = str(start.get("streamSid") or "")
    sockets = request.app[SOCKETS]
    async with sockets.slots.hold(grant.company_id, f"call:{grant.call_sid}") as refusal:
        if refusal is not None:
            raise ApiError(refusal.status, refusal.code, refusal.message)
        try:
            conversation = await _start_call(services, grant, stream_sid)
        except asyncpg.UniqueViolationError:
            raise ApiError.conflict(
                "This call's stream was opened already", call=grant.call_sid
            ) from None
        await sockets.calls.phone_call(ws, stream_sid, agent, conversation)


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
        message = _json_object(msg)
        event = message.get("event")
        if event == "connected":
            continue
        if event == "start" and isinstance(message.get("start"), dict):
            start = {**message["start"], "streamSid": message.get("streamSid")}
            refuse_unstorable(start)  # its ids are stored with the call
            return start
        raise ApiError.bad_request("MALFORMED_FRAME", "The stream must begin with start")


def _json_object(msg: Any) -> dict[str, Any]:
    if msg.type != WSMsgType.TEXT:
        raise ApiError.bad_request("MALFORMED_FRAME", "expected a text frame")
    try:
        message = orjson.loads(msg.data)
    except orjson.JSONDecodeError:
        raise ApiError.bad_request("MALFORMED_FRAME", "text frames are JSON") from None
    if not isinstance(message, dict):
        raise ApiError.bad_request("MALFORMED_FRAME", "text frames are JSON objects")
    return message


async def _routed_agent(services: Services, grant: twilio.StreamGrant) -> dict:
    """The number must still route to the agent the webhook named."""
    async with services.db.tenant(grant.company_id) as conn:
        route = await voice_numbers.find(conn, grant.called)
        agent = await agents.get_enabled(conn, grant.agent_id)
    if route is None or route["agent_id"] != grant.agent_id:
        raise ApiError.forbidden("The number no longer routes to this agent")
    return found(agent, "Agent")
