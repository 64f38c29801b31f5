"""A voice session's audio over a socket: livekit-agents' AudioInput and
AudioOutput for any transport that carries 16-bit mono PCM one way and the
agent's speech the other (the hub's WebSocket, a phone media stream). What
the bytes look like on the wire is the `Wire`'s business.

Output is paced: frames go out in real time, at most `LEAD` seconds ahead of
what the listener has heard, so an interruption stops the agent within that
bound (and the listener is told to drop its own small buffer). Each segment
(one utterance) ends with a mark the listener echoes once it has played it;
livekit-agents is told a segment finished — how far it played, whether it
was cut short — which is what the stored reply is cut to.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

from livekit import rtc
from livekit.agents.voice import io

log = logging.getLogger(__name__)

LEAD = 0.25  # seconds of speech sent ahead of real time: the bound on a barge-in's overrun
PIECE = 0.02  # seconds per message on the wire (TTS frames run to 200 ms; Twilio expects 20)
MARK_GRACE = 2.0  # a listener that never echoes marks: the segment ends this long after it played


class Wire(Protocol):
    async def send_audio(self, pcm16: bytes) -> None: ...
    async def send_mark(self, name: str) -> None: ...
    async def send_clear(self) -> None: ...


MAX_AHEAD_SECONDS = 2.0


class TooFast(Exception):
    pass


class StreamAudioInput(io.AudioInput):
    """The caller's audio, at `sample_rate` on the wire; the agent hears it at
    `rate` (narrowband phone audio is resampled once, here, as it arrives)."""

    def __init__(self, sample_rate: int, rate: int = 16_000) -> None:
        super().__init__(label="voice-stream")
        self.sample_rate = sample_rate
        self._resampler = (
            rtc.AudioResampler(sample_rate, rate, num_channels=1) if rate != sample_rate else None
        )
        self._frames: asyncio.Queue[rtc.AudioFrame | None] = asyncio.Queue()
        # Audio is spoken in real time: a token bucket of seconds, refilled by
        # the clock, lets the network bunch frames up to MAX_AHEAD_SECONDS.
        self._credit = MAX_AHEAD_SECONDS
        self._credited_at = time.monotonic()

    def push(self, pcm16: bytes) -> None:
        """Raises TooFast when the caller sends audio faster than it can be
        spoken (a flood would grow this queue and burn the speech models' CPU)."""
        samples = len(pcm16) // 2
        if not samples:
            return
        now = time.monotonic()
        self._credit = min(MAX_AHEAD_SECONDS, self._credit + now - self._credited_at)
        self._credited_at = now
        self._credit -= samples / self.sample_rate
        if self._credit < 0:
            raise TooFast(
                f"audio arrives faster than real time (over {MAX_AHEAD_SECONDS:g} s ahead)"
            )
        frame = rtc.AudioFrame(pcm16, self.sample_rate, 1, samples)
        for out in self._resampler.push(frame) if self._resampler else [frame]:
            self._frames.put_nowait(out)

    def close(self) -> None:
        self._frames.put_nowait(None)

    async def __anext__(self) -> rtc.AudioFrame:
        frame = await self._frames.get()
        if frame is None:
            self._frames.put_nowait(None)  # stays ended for any later reader
            raise StopAsyncIteration
        return frame


@dataclass
class _Segment:
    mark: str
    pushed: float = 0.0  # seconds captured
    sent: float = 0.0  # seconds sent
    started_at: float | None = None  # monotonic, when its first frame went out
    done: bool = False
    played: asyncio.Event = field(default_factory=asyncio.Event)

    def heard(self) -> float:
        if self.started_at is None:
            return 0.0
        return max(0.0, min(self.sent, time.monotonic() - self.started_at))


class StreamAudioOutput(io.AudioOutput):
    def __init__(self, wire: Wire, sample_rate: int) -> None:
        super().__init__(
            label="voice-stream",
            capabilities=io.AudioOutputCapabilities(pause=False),
            sample_rate=sample_rate,
        )
        self.wire = wire
        self._queue: asyncio.Queue[tuple[_Segment, bytes | None]] = asyncio.Queue()
        self._piece = 2 * max(1, int(sample_rate * PIECE))  # bytes of 16-bit mono
        self._segment: _Segment | None = None  # the one being captured
        self._live: dict[str, _Segment] = {}  # captured, not yet finished, by mark
        self._dropping = False  # cleared mid-capture: the rest of it is not played
        self._names = itertools.count(1)
        self._sender: asyncio.Task | None = None

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        if self._dropping:
            return
        if self._segment is None:
            self._segment = _Segment(mark=f"speech-{next(self._names)}")
            self._live[self._segment.mark] = self._segment
        self._segment.pushed += frame.duration
        data = bytes(frame.data)
        for start in range(0, len(data), self._piece):
            self._queue.put_nowait((self._segment, data[start : start + self._piece]))
        if self._sender is None:
            self._sender = asyncio.create_task(self._send())

    def flush(self) -> None:
        super().flush()
        self._dropping = False
        if self._segment is not None:
            self._queue.put_nowait((self._segment, None))
            self._segment = None

    def clear_buffer(self) -> None:
        if self._segment is not None:
            self._dropping = True  # livekit's capture stays open until its flush
            self._segment = None
        live = [s for s in self._live.values() if not s.done]
        for segment in live:
            self._finish(segment, interrupted=True)
        while not self._queue.empty():
            self._queue.get_nowait()
        if live:
            task = asyncio.ensure_future(self.wire.send_clear())
            task.add_done_callback(_log_failure)

    def played(self, mark: str) -> None:
        """The listener echoed a mark: everything before it has been heard."""
        segment = self._live.get(mark)
        if segment is not None:
            segment.played.set()

    async def aclose(self) -> None:
        for segment in list(self._live.values()):
            self._finish(segment, interrupted=True)
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender

    def _finish(self, segment: _Segment, *, interrupted: bool) -> None:
        if segment.done:
            return
        segment.done = True
        segment.played.set()
        self._live.pop(segment.mark, None)
        position = segment.heard() if interrupted else segment.pushed
        self.on_playback_finished(playback_position=position, interrupted=interrupted)

    async def _send(self) -> None:
        while True:
            segment, pcm = await self._queue.get()
            if segment.done:
                continue  # cleared
            if pcm is None:
                await self._end(segment)
                continue
            if segment.started_at is None:
                segment.started_at = time.monotonic()
                self.on_playback_started(created_at=time.time())
            ahead = segment.sent - (time.monotonic() - segment.started_at)
            if ahead > LEAD:
                await asyncio.sleep(ahead - LEAD)
            if segment.done:
                continue
            await self.wire.send_audio(pcm)
            segment.sent += len(pcm) / 2 / self.sample_rate

    async def _end(self, segment: _Segment) -> None:
        """All of a segment is sent: it has played when the listener echoes its
        mark (or, from a listener that does not, once its time has passed)."""
        await self.wire.send_mark(segment.mark)
        remaining = segment.sent - segment.heard()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(segment.played.wait(), remaining + MARK_GRACE)
        self._finish(segment, interrupted=False)


def _log_failure(task: asyncio.Future) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.info('{"event":"voice_clear_failed","error":"%s"}', task.exception())
