"""The voice sockets' frames: what the agent's speech looks like on each
(the browser's binary PCM, Twilio's base64 μ-law in JSON) and how a caller's
frames are read, each malformed one ending the stream with its reason."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
from typing import Any

from aiohttp import WSMsgType, web

from agents_runtime.voice.stream_io import StreamAudioInput, StreamAudioOutput, TooFast
from hub.voice import twilio

MAX_AUDIO_FRAME = 32_000  # bytes: one second of 16 kHz 16-bit audio


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


def _push(audio: StreamAudioInput, pcm16: bytes) -> None:
    try:
        audio.push(pcm16)
    except TooFast as exc:
        raise malformed(str(exc)) from None


def read_browser_frame(msg: Any, audio: StreamAudioInput, output: StreamAudioOutput) -> bool:
    """Apply one browser frame; True when it carried audio."""
    if msg.type == WSMsgType.BINARY:
        data = msg.data
        if not data or len(data) % 2 or len(data) > MAX_AUDIO_FRAME:
            raise malformed(f"audio frames are 16-bit PCM of 2 to {MAX_AUDIO_FRAME} bytes")
        _push(audio, data)
        return True
    message = json_object(msg)
    kind = message.get("type")
    if kind == "mark" and isinstance(message.get("name"), str):
        output.played(message["name"])
        return False
    if kind == "stop":
        raise hung_up()
    raise malformed("text frames are {type: mark, name} or {type: stop}")


def read_twilio_frame(msg: Any, audio: StreamAudioInput, output: StreamAudioOutput) -> bool:
    message = json_object(msg)
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
        _push(audio, twilio.ulaw_to_pcm16(ulaw))
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


def json_object(msg: Any) -> dict[str, Any]:
    if msg.type != WSMsgType.TEXT:
        raise malformed("expected a text frame")
    try:
        message = json.loads(msg.data)
    except ValueError:
        raise malformed("text frames are JSON") from None
    if not isinstance(message, dict):
        raise malformed("text frames are JSON objects")
    return message
