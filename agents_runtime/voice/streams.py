"""A voice session on a socket, and the browser's voice WebSocket
(`/public/voice/ws`). Phone media streams (agents_runtime.voice.phone) run
their sessions here too: the same voice agent (`VoiceCall`) as LiveKit calls.

The session runs in the web process the socket reached (docs/voice.md says
why): each process caps how many it runs, each company how many it has
(hub.voice.slots), and a socket that stops sending audio is closed.

Refusals are a JSON text frame `{"type": "error", "error", "code",
"details"}` and then a close whose code and reason say the same. A refused
or broken stream leaves the conversation as it was, or ended with what was
actually said and heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from aiohttp import WSMsgType, web
from livekit.agents.voice import events as lk_events
from livekit.agents.voice.transcription.synchronizer import TranscriptSynchronizer

from agents_runtime.llm import LLM
from agents_runtime.voice.call import VoiceCall
from agents_runtime.voice.spoken import spoken
from agents_runtime.voice.stream_io import StreamAudioInput, StreamAudioOutput
from agents_runtime.voice.wires import (
    MAX_TEXT_FRAME,
    BrowserWire,
    StreamClosed,
    TwilioWire,
    hung_up,
    read_browser_frame,
)
from hub.errors import ApiError
from hub.events import Event
from hub.realtime.namespace import count_connect_attempt
from hub.services import SERVICES, Services
from hub.store import agents, conversations
from hub.visitors import ConversationGrant, invalid_key, verify_visitor
from hub.voice.slots import VoiceSlots

log = logging.getLogger(__name__)

BROWSER_RATE = 16_000


@dataclass
class VoiceStreams:
    """What the process's voice sockets share: the session caps, one LLM
    client (its connection pool serves every session), and the browser
    sockets by publishable key, so that a revoked key cuts its calls."""

    slots: VoiceSlots
    llm: LLM
    by_key: dict[UUID, set[web.WebSocketResponse]] = field(default_factory=lambda: defaultdict(set))

    async def on_event(self, event: Event) -> None:
        if event.type != "key.revoked":
            return
        for ws in list(self.by_key.pop(UUID(event.data["key_id"]), ())):
            await refuse(ws, invalid_key("This key has been revoked"))


STREAMS = web.AppKey("voice_streams", VoiceStreams)


_CLOSE_FOR_STATUS = {401: 4401, 403: 4403, 404: 4404, 409: 4409, 429: 4429, 500: 1011, 503: 1013}


def voice_socket(
    handler: Callable[[web.Request, web.WebSocketResponse], Awaitable[None]],
) -> Callable[[web.Request], Awaitable[web.WebSocketResponse]]:
    """A voice socket's route: the handler gets the upgraded socket. Once
    upgraded an HTTP error can no longer be sent, so an ApiError, or anything
    that fails unexpectedly (1011), closes the socket with its reason."""

    @functools.wraps(handler)
    async def route(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=MAX_TEXT_FRAME, heartbeat=20)
        await ws.prepare(request)
        try:
            await handler(request, ws)
        except ApiError as error:
            await refuse(ws, error)
        except Exception:
            log.exception('{"event":"voice_socket_failed","path":"%s"}', request.path)
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


# -- one voice session -------------------------------------------------------------


@dataclass
class Session:
    services: Services
    llm: LLM
    ws: web.WebSocketResponse
    wire: BrowserWire | TwilioWire
    sample_rate: int
    read_frame: Callable[[Any, StreamAudioInput, StreamAudioOutput], bool]


async def converse(session: Session, agent: dict, conversation: dict) -> None:
    """Run the voice agent on the socket until either side ends the call."""
    services, ws, wire = session.services, session.ws, session.wire
    audio_in = StreamAudioInput(session.sample_rate)
    audio_out = StreamAudioOutput(wire, session.sample_rate)
    synchronizer = TranscriptSynchronizer(next_in_chain_audio=audio_out, next_in_chain_text=None)

    closing = False  # the transport ends the call: it closes the socket with its own reason

    async def hang_up() -> None:  # the agent or staff ended the call
        if not closing:
            await ws.close(code=1000, message=b"the call ended")

    call = VoiceCall.speaking(services, session.llm, agent, conversation, on_end=hang_up)
    voice = call.session
    voice.input.audio = audio_in
    # The synchronizer tells livekit which words were heard when speech is cut short.
    voice.output.audio = synchronizer.audio_output
    voice.output.transcription = synchronizer.text_output
    relays: set[asyncio.Task] = set()
    if wire.events:
        _relay_events(call, wire, relays)
    ended: StreamClosed = hung_up()
    started = False
    try:
        await call.start()
        started = True
        if wire.events:
            await wire.send({"type": "ready", "conversation_id": str(conversation["id"])})
        await _read(session, audio_in, audio_out)
    except StreamClosed as closed:
        ended = closed
    except Exception:
        log.exception('{"event":"voice_stream_failed","conversation":"%s"}', conversation["id"])
        ended = StreamClosed(1011, "INTERNAL_ERROR", "the voice session failed", "error")
    finally:
        closing = True
        call.end_reason = ended.end_reason
        audio_in.close()
        with contextlib.suppress(Exception):
            await voice.aclose()
        if started:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(call.wait_ended(), 10)
        await call.abandon()  # a session that never started sends no close event
        await audio_out.aclose()
        await synchronizer.aclose()
        await asyncio.gather(*relays, return_exceptions=True)
    log.info(
        '{"event":"voice_stream_ended","conversation":"%s","reason":"%s","seconds":%.1f}',
        conversation["id"],
        ended.end_reason,
        time.monotonic() - call.started,
    )
    if not ws.closed:
        if ended.code is not None:
            await wire.send(
                {"type": "error", "error": ended.reason, "code": ended.code, "details": {}}
            )
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.close(code=ended.close, message=ended.reason[:120].encode())


async def _read(session: Session, audio_in: StreamAudioInput, audio_out: StreamAudioOutput) -> None:
    idle = session.services.settings.voice_idle_seconds
    last_audio = time.monotonic()
    while True:
        wait = last_audio + idle - time.monotonic()
        try:
            msg = await session.ws.receive(timeout=max(wait, 0.001))
        except TimeoutError:
            raise StreamClosed(
                4408, "IDLE_TIMEOUT", f"no audio for {idle} seconds", "idle_timeout"
            ) from None
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            raise hung_up()
        if session.read_frame(msg, audio_in, audio_out):
            last_audio = time.monotonic()


def _relay_events(call: VoiceCall, wire: BrowserWire, tasks: set[asyncio.Task]) -> None:
    """What the visitor's page shows: its words, the agent's, the agent's state."""
    voice = call.session

    def send(data: dict[str, Any]) -> None:
        task = asyncio.create_task(wire.send(data))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def on_transcript(event: lk_events.UserInputTranscribedEvent) -> None:
        if event.is_final and event.transcript.strip():
            send({"type": "transcript", "role": "user", "text": event.transcript})

    def on_item(event: lk_events.ConversationItemAddedEvent) -> None:
        item = event.item
        if getattr(item, "role", None) == "assistant" and (text := spoken(item.text_content or "")):
            send(
                {
                    "type": "transcript",
                    "role": "agent",
                    "text": text,
                    "interrupted": bool(item.interrupted),
                }
            )

    def on_state(event: lk_events.AgentStateChangedEvent) -> None:
        send({"type": "state", "state": event.new_state})

    voice.on("user_input_transcribed", on_transcript)
    voice.on("conversation_item_added", on_item)
    voice.on("agent_state_changed", on_state)


# -- the browser transport ---------------------------------------------------------


@voice_socket
async def browser_socket(request: web.Request, ws: web.WebSocketResponse) -> None:
    """`/public/voice/ws?token=<conversation token>`: a voice conversation's
    audio (see docs/voice.md for the protocol)."""
    services: Services = request.app[SERVICES]
    await count_connect_attempt(services, request.remote, request.headers.get("X-Forwarded-For"))
    grant = await verify_visitor(
        services.db, services.settings, request.query.get("token"), request.headers.get("Origin")
    )
    agent, conversation = await _browser_conversation(services, grant)
    streams = request.app[STREAMS]
    session = Session(services, streams.llm, ws, BrowserWire(ws), BROWSER_RATE, read_browser_frame)
    async with streams.slots.hold(grant.company_id, str(conversation["id"])) as refusal:
        if refusal is not None:
            raise ApiError(refusal.status, refusal.code, refusal.message)
        streams.by_key[grant.key_id].add(ws)
        try:
            await converse(session, agent, conversation)
        finally:
            streams.by_key.get(grant.key_id, set()).discard(ws)


async def _browser_conversation(services: Services, grant: ConversationGrant) -> tuple[dict, dict]:
    async with services.db.tenant(grant.company_id) as conn:
        conversation = await conversations.get(conn, grant.conversation_id)
        agent = await agents.get(conn, grant.agent_id)
    if conversation is None or conversation["agent_id"] != grant.agent_id:
        raise ApiError.not_found("Conversation")
    if agent is None or not agent["enabled"]:
        raise ApiError.not_found("Agent")
    if conversation["status"] != "active":
        raise ApiError.conflict("The conversation has ended", status=conversation["status"])
    if conversation["channel"] != "voice":
        raise ApiError.conflict(
            "Not a voice conversation: start one with channel voice",
            channel=conversation["channel"],
        )
    return agent, conversation
