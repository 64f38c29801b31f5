"""The far end of a voice socket in the tests and the benchmark: it speaks
real (Piper-synthesised) audio in real time, echoes the agent's marks, and
keeps the agent's speech, its JSON frames and how the socket closed."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time

import numpy as np
from aiohttp import ClientWebSocketResponse, WSMsgType

from agents_runtime.voice import models
from agents_runtime.voice.offline_stt import to_pcm16
from agents_runtime.voice.offline_tts import PiperTTS
from hub.voice import twilio

CHUNK_SECONDS = 0.02  # what a browser's audio worklet or Twilio sends at a time


async def synthesize(text: str, sample_rate: int, speed: float = 1.0) -> bytes:
    """Piper speaks `text`: 16-bit mono PCM at `sample_rate`."""
    frames = []
    async with PiperTTS(speed=speed).synthesize(text) as stream:
        async for audio in stream:
            frames.append(audio.frame)
    return to_pcm16(frames, sample_rate)


def silence(seconds: float, sample_rate: int) -> bytes:
    return bytes(2 * int(seconds * sample_rate))


def transcribe(pcm16: bytes, sample_rate: int) -> str:
    """pocketsphinx hears the agent's speech (16 kHz)."""
    if sample_rate != models.STT_SAMPLE_RATE:
        samples = np.frombuffer(pcm16, dtype=np.int16).astype(np.float32)
        positions = np.arange(0, len(samples), sample_rate / models.STT_SAMPLE_RATE)
        pcm16 = np.interp(positions, np.arange(len(samples)), samples).astype(np.int16).tobytes()
    return models.decoders().transcribe(pcm16)[0]


class Line:
    def __init__(
        self, ws: ClientWebSocketResponse, sample_rate: int, stream_sid: str | None = None
    ) -> None:
        self.ws, self.sample_rate, self.stream_sid = ws, sample_rate, stream_sid
        self.audio = bytearray()  # the agent's speech, PCM at `sample_rate`
        self.frames: list[dict] = []  # JSON frames (browser) or non-media events (Twilio)
        self.marks: list[str] = []  # marks echoed
        self.clears = 0
        self.first_audio_at: float | None = None
        self.last_audio_at: float | None = None
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._mic = bytearray()  # what the caller says next
        self._tasks = [asyncio.create_task(self._receive()), asyncio.create_task(self._speak())]
        self.closed = asyncio.Event()

    @property
    def twilio(self) -> bool:
        return self.stream_sid is not None

    def say(self, pcm16: bytes) -> None:
        """Queue speech; between utterances the line carries silence, as an open mic does."""
        self._mic += pcm16

    @property
    def speaking(self) -> bool:
        return bool(self._mic)

    async def send_json(self, data: dict) -> None:
        await self.ws.send_str(json.dumps(data))

    async def _speak(self) -> None:
        chunk = 2 * int(CHUNK_SECONDS * self.sample_rate)
        started, sent = time.monotonic(), 0
        while not self.ws.closed:
            piece = bytes(self._mic[:chunk]) or bytes(chunk)
            del self._mic[:chunk]
            if len(piece) < chunk:
                piece += bytes(chunk - len(piece))
            with contextlib.suppress(ConnectionError, RuntimeError):
                if self.twilio:
                    payload = base64.b64encode(twilio.pcm16_to_ulaw(piece)).decode()
                    await self.send_json(
                        {
                            "event": "media",
                            "streamSid": self.stream_sid,
                            "media": {"track": "inbound", "payload": payload},
                        }
                    )
                else:
                    await self.ws.send_bytes(piece)
            sent += 1
            # Real time: the next chunk when this one has been "spoken".
            await asyncio.sleep(max(0.0, started + sent * CHUNK_SECONDS - time.monotonic()))

    async def _receive(self) -> None:
        while True:
            msg = await self.ws.receive()
            if msg.type == WSMsgType.CLOSE:
                self.close_code, self.close_reason = msg.data, msg.extra
                break
            if msg.type in (WSMsgType.CLOSED, WSMsgType.ERROR, WSMsgType.CLOSING):
                break
            if msg.type == WSMsgType.BINARY:
                self._heard(msg.data)
            elif msg.type == WSMsgType.TEXT:
                data = json.loads(msg.data)
                kind = data.get("event") if self.twilio else data.get("type")
                if kind == "media":
                    self._heard(twilio.ulaw_to_pcm16(base64.b64decode(data["media"]["payload"])))
                    continue
                self.frames.append(data)
                if kind == "mark":
                    name = data["mark"]["name"] if self.twilio else data["name"]
                    self.marks.append(name)
                    echo = (
                        {"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}}
                        if self.twilio
                        else {"type": "mark", "name": name}
                    )
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await self.send_json(echo)
                elif kind == "clear":
                    self.clears += 1
        if self.close_code is None:
            self.close_code = self.ws.close_code
        self.closed.set()

    def _heard(self, pcm16: bytes) -> None:
        now = time.monotonic()
        self.first_audio_at = self.first_audio_at or now
        self.last_audio_at = now
        self.audio += pcm16

    def of_type(self, kind: str) -> list[dict]:
        key = "event" if self.twilio else "type"
        return [f for f in self.frames if f.get(key) == kind]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.ws.close()
