"""Voice without a LiveKit server: the hub's own WebSocket audio transport
for browsers (`/public/voice/ws`) and Twilio-compatible phone media streams
(`/voice/twilio/incoming` answers the call, `/voice/twilio/stream` carries
it), both into the same voice agent (`VoiceCall`) as LiveKit calls.

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
import base64
import binascii
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from aiohttp import WSMsgType, web
from livekit.agents.voice import events as lk_events
from livekit.agents.voice.transcription.synchronizer import TranscriptSynchronizer

from agents_runtime import runtime
from agents_runtime.llm import LLM
from agents_runtime.voice import models, speech
from agents_runtime.voice.call import VoiceCall
from agents_runtime.voice.spoken import spoken
from agents_runtime.voice.stream_io import StreamAudioInput, StreamAudioOutput
from hub.conversations import start_conversation
from hub.errors import ApiError
from hub.services import SERVICES, Services
from hub.store import agents, conversations, voice_numbers
from hub.visitors import verify_conversation_token
from hub.voice import twilio
from hub.voice.slots import VoiceSlots

log = logging.getLogger(__name__)

BROWSER_RATE = 16_000
MAX_AUDIO_FRAME = 32_000  # bytes: one second of 16 kHz 16-bit audio
MAX_TEXT_FRAME = 64 * 1024  # Twilio's 20 ms media messages are ~300 bytes
START_TIMEOUT = 10.0  # seconds for a phone stream's `start`


@dataclass
class VoiceStreams:
    """What the process's voice sockets share: the session caps and one LLM
    client (its connection pool serves every session)."""

    slots: VoiceSlots
    llm: LLM


STREAMS = web.AppKey("voice_streams", VoiceStreams)


class StreamClosed(Exception):
    """Why a stream ends: a close code, an error code for the client (None:
    a normal end), a reason, and what the conversation records."""

    def __init__(self, close: int, code: str | None, reason: str, end_reason: str) -> None:
        super().__init__(reason)
        self.close, self.code, self.reason, self.end_reason = close, code, reason, end_reason


def malformed(reason: str) -> StreamClosed:
    return StreamClosed(4400, "MALFORMED_FRAME", reason, "malformed_frame")


def hung_up() -> StreamClosed:
    return StreamClosed(1000, None, "the caller hung up", "hung_up")


_CLOSE_FOR_STATUS = {401: 4401, 403: 4403, 404: 4404, 409: 4409, 429: 4429}


async def refuse(ws: web.WebSocketResponse, error: ApiError) -> web.WebSocketResponse:
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.send_json({"type": "error", **error.body()})
        await ws.close(
            code=_CLOSE_FOR_STATUS.get(error.status, 4400),
            message=f"{error.code}: {error.message}"[:120].encode(),
        )
    return ws


# -- the wires: what the agent's speech looks like on each socket ------------------


class _Socket:
    """One WebSocket's sends, one at a time."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self._lock = asyncio.Lock()

    async def send(self, data: bytes | dict[str, Any]) -> None:
        if self.ws.closed:
            return
        async with self._lock:
            with contextlib.suppress(ConnectionError, RuntimeError):
                if isinstance(data, bytes):
                    await self.ws.send_bytes(data)
                else:
                    await self.ws.send_str(json.dumps(data))


class BrowserWire(_Socket):
    """PCM 16 kHz as binary frames; marks, clears, transcripts and state as JSON."""

    events = True

    async def send_audio(self, pcm16: bytes) -> None:
        await self.send(pcm16)

    async def send_mark(self, name: str) -> None:
        await self.send({"type": "mark", "name": name})

    async def send_clear(self) -> None:
        await self.send({"type": "clear"})


class TwilioWire(_Socket):
    """Twilio Media Streams: μ-law 8 kHz, base64, in `media` messages."""

    events = False  # Twilio takes media, mark and clear only

    def __init__(self, ws: web.WebSocketResponse, stream_sid: str) -> None:
        super().__init__(ws)
        self.stream_sid = stream_sid

    async def send_audio(self, pcm16: bytes) -> None:
        payload = base64.b64encode(twilio.pcm16_to_ulaw(pcm16)).decode()
        await self.send(
            {"event": "media", "streamSid": self.stream_sid, "media": {"payload": payload}}
        )

    async def send_mark(self, name: str) -> None:
        await self.send({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}})

    async def send_clear(self) -> None:
        await self.send({"event": "clear", "streamSid": self.stream_sid})


# -- reading frames ------------------------------------------------------------------


def read_browser_frame(msg: Any, audio: StreamAudioInput, output: StreamAudioOutput) -> bool:
    """Apply one browser frame; True when it carried audio."""
    if msg.type == WSMsgType.BINARY:
        data = msg.data
        if not data or len(data) % 2 or len(data) > MAX_AUDIO_FRAME:
            raise malformed(f"audio frames are 16-bit PCM of 2 to {MAX_AUDIO_FRAME} bytes")
        audio.push(data)
        return True
    message = _json_object(msg)
    kind = message.get("type")
    if kind == "mark" and isinstance(message.get("name"), str):
        output.played(message["name"])
        return False
    if kind == "stop":
        raise hung_up()
    raise malformed("text frames are {type: mark, name} or {type: stop}")


def read_twilio_frame(msg: Any, audio: StreamAudioInput, output: StreamAudioOutput) -> bool:
    message = _json_object(msg)
    event = message.get("event")
    if event == "media":
        media = message.get("media")
        if not isinstance(media, dict) or not isinstance(media.get("payload"), str):
            raise malformed("a media message carries media.payload")
        if media.get("track", "inbound") != "inbound":
            return False
        try:
            ulaw = base64.b64decode(media["payload"], validate=True)
        except (binascii.Error, ValueError):
            raise malformed("media.payload is not base64") from None
        audio.push(twilio.ulaw_to_pcm16(ulaw))
        return True
    if event == "mark":
        mark = message.get("mark")
        if not isinstance(mark, dict) or not isinstance(mark.get("name"), str):
            raise malformed("a mark message carries mark.name")
        output.played(mark["name"])
        return False
    if event == "stop":
        raise hung_up()
    if event in ("connected", "dtmf"):
        return False
    raise malformed(f"unexpected event {event!r}")


def _json_object(msg: Any) -> dict[str, Any]:
    if msg.type != WSMsgType.TEXT:
        raise malformed("expected a text frame")
    if len(msg.data) > MAX_TEXT_FRAME:
        raise malformed("text frame too large")
    try:
        message = json.loads(msg.data)
    except ValueError:
        raise malformed("text frames are JSON") from None
    if not isinstance(message, dict):
        raise malformed("text frames are JSON objects")
    return message


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
    settings = services.settings
    await asyncio.to_thread(models.prewarm)  # once per process; the first caller waits for it
    chosen = speech.choose(agent["voice_settings"] or {}, settings)
    audio_in = StreamAudioInput(session.sample_rate)
    audio_out = StreamAudioOutput(wire, session.sample_rate)
    synchronizer = TranscriptSynchronizer(next_in_chain_audio=audio_out, next_in_chain_text=None)

    closing = False  # the transport ends the call: it closes the socket with its own reason

    async def hang_up() -> None:  # the agent or staff ended the call
        if not closing:
            await ws.close(code=1000, message=b"the call ended")

    call = VoiceCall(
        services,
        session.llm,
        agent,
        conversation,
        stt=speech.build_stt(chosen, settings),
        tts=speech.build_tts(chosen, settings),
        vad=models.silero_vad(),
        on_end=hang_up,
    )
    voice = call.session
    voice.input.audio = audio_in
    # The synchronizer tells livekit which words were heard when speech is cut short.
    voice.output.audio = synchronizer.audio_output
    voice.output.transcription = synchronizer.text_output
    relays: set[asyncio.Task] = set()
    if wire.events:
        _relay_events(call, wire, relays)
    ended: StreamClosed = hung_up()
    try:
        await call.start()
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
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(call.wait_ended(), 10)
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


async def browser_socket(request: web.Request) -> web.WebSocketResponse:
    """`/public/voice/ws?token=<conversation token>`: a voice conversation's
    audio (see docs/voice.md for the protocol)."""
    services: Services = request.app[SERVICES]
    ws = web.WebSocketResponse(max_msg_size=MAX_TEXT_FRAME, heartbeat=20)
    await ws.prepare(request)
    try:
        grant = verify_conversation_token(services.settings, request.query.get("token"))
        agent, conversation = await _browser_conversation(services, grant.company_id, grant)
    except ApiError as error:
        return await refuse(ws, error)
    streams = request.app[STREAMS]
    session = Session(services, streams.llm, ws, BrowserWire(ws), BROWSER_RATE, read_browser_frame)
    async with streams.slots.hold(grant.company_id) as refusal:
        if refusal is not None:
            return await refuse(ws, ApiError(429, refusal.code, refusal.message))
        await converse(session, agent, conversation)
    return ws


async def _browser_conversation(services: Services, company_id: UUID, grant) -> tuple[dict, dict]:
    async with services.db.tenant(company_id) as conn:
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


# -- Twilio ------------------------------------------------------------------------


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
    if settings.twilio_auth_token:
        url = _public_base(request) + request.path_qs
        given = request.headers.get("X-Twilio-Signature", "")
        if not twilio.valid_signature(settings.twilio_auth_token, url, params, given):
            raise ApiError(403, "INVALID_SIGNATURE", "The request is not signed by Twilio")
    called, call_sid = params.get("To", ""), params.get("CallSid", "")
    if not call_sid:
        raise ApiError.validation({"CallSid": "required"})
    async with services.db.system() as conn:  # the number names the tenant
        route = await voice_numbers.find(conn, called)
    if route is None:
        raise ApiError.not_found("Phone number", phone_number=called)
    grant = twilio.StreamGrant(
        route["company_id"], route["agent_id"], call_sid, called, params.get("From")
    )
    base = _public_base(request).replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    twiml = twilio.connect_twiml(
        f"{base}/voice/twilio/stream", twilio.mint_stream_token(settings, grant)
    )
    return web.Response(text=twiml, content_type="text/xml")


async def twilio_stream(request: web.Request) -> web.WebSocketResponse:
    """The call's media stream, opened by Twilio after our TwiML."""
    services: Services = request.app[SERVICES]
    ws = web.WebSocketResponse(max_msg_size=MAX_TEXT_FRAME, heartbeat=20)
    await ws.prepare(request)
    try:
        start = await _twilio_start(ws)
        params = start.get("customParameters") or {}
        try:
            grant = twilio.verify_stream_token(services.settings, params.get("token"))
        except twilio.InvalidStreamToken as exc:
            raise ApiError.unauthorized(str(exc), "INVALID_TOKEN") from None
        if start.get("callSid") != grant.call_sid:
            raise ApiError.unauthorized("The stream belongs to another call", "INVALID_TOKEN")
        agent = await _routed_agent(services, grant)
    except ApiError as error:
        return await refuse(ws, error)
    wire = TwilioWire(ws, str(start.get("streamSid") or ""))
    streams = request.app[STREAMS]
    session = Session(services, streams.llm, ws, wire, twilio.SAMPLE_RATE, read_twilio_frame)
    async with streams.slots.hold(grant.company_id) as refusal:
        if refusal is not None:
            return await refuse(ws, ApiError(429, refusal.code, refusal.message))
        db = services.db
        async with db.tenant(grant.company_id) as conn:
            conversation = await start_conversation(
                db,
                conn,
                company_id=grant.company_id,
                agent_id=grant.agent_id,
                channel="phone",
                metadata={
                    "source": "twilio",
                    "call_sid": grant.call_sid,
                    "stream_sid": wire.stream_sid,
                    "called_number": grant.called,
                    "caller_number": grant.caller,
                },
            )
        await converse(session, agent, conversation)
    return ws


async def _twilio_start(ws: web.WebSocketResponse) -> dict[str, Any]:
    """Twilio sends `connected`, then `start`; anything else first is refused."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            msg = await ws.receive(timeout=max(deadline - time.monotonic(), 0.001))
        except TimeoutError:
            raise ApiError.bad_request("MALFORMED_FRAME", "No start message") from None
        try:
            message = _json_object(msg)
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


def install(app: web.Application) -> None:
    async def streams_ctx(app: web.Application) -> AsyncIterator[None]:
        services = app[SERVICES]
        settings = services.settings
        slots = VoiceSlots(
            settings.voice_sessions_per_company,
            settings.voice_sessions_per_process,
            services.redis,
            settings.redis_prefix,
        )
        app[STREAMS] = VoiceStreams(slots, runtime.build_llm(settings))
        yield

    app.cleanup_ctx.append(streams_ctx)
    app.router.add_get("/public/voice/ws", browser_socket)
    app.router.add_post("/voice/twilio/incoming", twilio_incoming)
    app.router.add_get("/voice/twilio/stream", twilio_stream)
