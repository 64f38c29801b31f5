"""The voice agent on an accepted socket: a browser's voice WebSocket or a
Twilio media stream, both run by the same voice agent (`VoiceCall`) as
LiveKit calls. The transport (http_api.routes.voice_sockets) upgrades,
authenticates, caps and finds the conversation; `VoiceAgent` runs the call
until either side ends it, and closes the socket with the reason (a broken
stream leaves the conversation ended with what was actually said and heard).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web
from livekit.agents.voice import events as lk_events
from livekit.agents.voice.transcription.synchronizer import TranscriptSynchronizer

from agents_runtime import runtime
from agents_runtime.llm import LLM
from agents_runtime.voice import models
from agents_runtime.voice.call import VoiceCall
from agents_runtime.voice.spoken import spoken
from agents_runtime.voice.stream_io import StreamAudioInput, StreamAudioOutput
from agents_runtime.voice.wires import (
    BrowserWire,
    StreamClosed,
    TwilioWire,
    hung_up,
    read_browser_frame,
    read_twilio_frame,
)
from hub.services import Services
from hub.voice import twilio

log = logging.getLogger(__name__)

BROWSER_RATE = 16_000


class VoiceAgent:
    """What a process's voice sockets hand their accepted calls to. One LLM
    client: its connection pool serves every session."""

    def __init__(self, services: Services, llm: LLM) -> None:
        self.services, self.llm = services, llm

    @classmethod
    def open(cls, services: Services) -> VoiceAgent:
        # On the loop's (main) thread, before the first call: a no-op once
        # `serve` has loaded them; an app built another way loads them here.
        # Piper and Whisper are left for the first call (models.warm/ready).
        models.load_speech(eager=False)
        return cls(services, runtime.build_llm(services.settings))

    async def aclose(self) -> None:
        await self.llm.aclose()

    def warm(self, phone: bool) -> None:
        models.warm(phone)

    async def browser_call(
        self, ws: web.WebSocketResponse, agent: dict, conversation: dict
    ) -> None:
        wire = BrowserWire(ws)
        await models.ready(phone=False)
        await converse(
            self._session(ws, wire, BROWSER_RATE, read_browser_frame), agent, conversation
        )

    async def phone_call(
        self, ws: web.WebSocketResponse, stream_sid: str, agent: dict, conversation: dict
    ) -> None:
        wire = TwilioWire(ws, stream_sid)
        await models.ready(phone=True)
        await converse(
            self._session(ws, wire, twilio.SAMPLE_RATE, read_twilio_frame), agent, conversation
        )

    def _session(self, ws, wire, sample_rate, read_frame) -> Session:
        return Session(self.services, self.llm, ws, wire, sample_rate, read_frame)


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
