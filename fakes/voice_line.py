"""The far end of a voice socket in the tests and the benchmark: it speaks
real (Piper- or espeak-ng-synthesised) audio in real time, echoes the
agent's marks, and keeps the agent's speech, its JSON frames and how the
socket closed."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import subprocess
import time
import wave

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


# A voice the hub's pocketsphinx hears well enough, checked on the questions
# the tests ask as the first utterance of a fresh decoder, with the speech
# starting at each offset a VAD window can have: "Can I get a refund?" is heard
# with "refund" in it at 150-170 words a minute in this voice (and en-us+f2),
# but at 130-140, or in en-us, en-us+f3, en-us+f4 or en-us+m1, "refund" often
# comes out as "to lead on" or "to meet on".
ESPEAK_VOICE, ESPEAK_SPEED = "en-us+f5", 160


def espeak(
    text: str, sample_rate: int, voice: str = ESPEAK_VOICE, speed: int = ESPEAK_SPEED
) -> bytes:
    """espeak-ng speaks `text`: 16-bit mono PCM at `sample_rate`. The callers
    of the voice tests that run the hub as shipped speak with it, not with
    Piper (the agent's own voice), so the recogniser is not heard only on
    the voice it answers with."""
    wav = subprocess.run(
        ["espeak-ng", "--stdout", "-v", voice, "-s", str(speed), text],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    # Written to a pipe, the header's sizes are placeholders: read what is there.
    with wave.open(io.BytesIO(wav)) as f:
        assert (f.getnchannels(), f.getsampwidth()) == (1, 2), "espeak-ng writes mono PCM16"
        rate, pcm = f.getframerate(), f.readframes(f.getnframes())
    return resample(pcm, rate, sample_rate)


def resample(pcm16: bytes, rate: int, to: int) -> bytes:
    """Band-limited resampling of a whole clip (its spectrum cut or padded),
    the same samples every time. livekit's rtc.AudioResampler gives slightly
    different samples on each call, and a caller whose words pocketsphinx
    hears only just would be heard differently from run to run."""
    samples = np.frombuffer(pcm16, dtype=np.int16).astype(np.float64)
    n = int(round(len(samples) * to / rate))
    spectrum = np.fft.rfft(samples)
    bins = n // 2 + 1
    spectrum = (
        spectrum[:bins] if len(spectrum) >= bins else np.pad(spectrum, (0, bins - len(spectrum)))
    )
    out = np.fft.irfft(spectrum, n) * (n / len(samples))
    return np.clip(np.round(out), -32768, 32767).astype(np.int16).tobytes()


def write_wav(path, pcm16: bytes, sample_rate: int) -> None:
    """Mono 16-bit PCM as a WAV file (Chromium's fake microphone plays one)."""
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(sample_rate)
        f.writeframes(pcm16)


def silence(seconds: float, sample_rate: int) -> bytes:
    return bytes(2 * int(seconds * sample_rate))


def transcribe(pcm16: bytes, sample_rate: int) -> str:
    """pocketsphinx hears the agent's speech (16 kHz)."""
    if sample_rate != models.STT_SAMPLE_RATE:
        samples = np.frombuffer(pcm16, dtype=np.int16).astype(np.float32)
        positions = np.arange(0, len(samples), sample_rate / models.STT_SAMPLE_RATE)
        pcm16 = np.interp(positions, np.arange(len(samples)), samples).astype(np.int16).tobytes()
    return models.decoders().transcribe(pcm16)[0]


async def start_twilio_stream(
    ws: ClientWebSocketResponse, call_sid: str, token: str, stream_sid: str, account: str = "AC1"
) -> None:
    """What Twilio sends first on a media stream: `connected`, then `start`
    with the call, the TwiML's parameters and the audio format."""
    await ws.send_json({"event": "connected", "protocol": "Call", "version": "1.0.0"})
    await ws.send_json(
        {
            "event": "start",
            "sequenceNumber": "1",
            "streamSid": stream_sid,
            "start": {
                "accountSid": account,
                "streamSid": stream_sid,
                "callSid": call_sid,
                "tracks": ["inbound"],
                "customParameters": {"token": token},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        }
    )


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
