"""Speech to text offline, as livekit-agents STTs: pocketsphinx, which
recognises while the caller speaks, for wideband callers (browsers, WebRTC),
and Whisper tiny.en for phone callers, whose 8 kHz audio pocketsphinx's
wideband model mostly mishears (bench/wer.py).

A batch recogniser behind livekit's StreamAdapter decodes an utterance only
once the VAD has declared it over, so the caller waits for the whole decode
(~0.3 s for a short question) on top of the silence that ends it. Here the
stream runs its own VAD to mark utterances, as the StreamAdapter does, and
feeds each stretch of speech to a decoder as it arrives: when the VAD ends
the utterance, only pocketsphinx's final pass is left (~50 ms).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import numpy as np
from livekit import rtc
from livekit.agents import APIConnectOptions, LanguageCode, stt, utils, vad
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, NotGivenOr

from agents_runtime.voice import models

LANGUAGE = LanguageCode("en-US")
# Decoding happens off the event loop; audio is handed over in pieces of at
# least this much (VAD windows are 32 ms), so the thread hops stay few.
FEED_SECONDS = 0.1


class _OfflineSTT(stt.STT):
    """What the offline recognisers share: a whole utterance (16 kHz mono
    PCM) → its words, recognised in the speech threads by `transcribe`."""

    def __init__(self, transcribe: Callable[[bytes], tuple[str, float]], *, streaming: bool):
        super().__init__(
            capabilities=stt.STTCapabilities(streaming=streaming, interim_results=False)
        )
        self._transcribe = transcribe

    async def _recognize_impl(
        self,
        buffer: utils.AudioBuffer,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions,
    ) -> stt.SpeechEvent:
        pcm = to_pcm16(buffer, models.STT_SAMPLE_RATE)
        text, confidence = await models.off_loop(self._transcribe, pcm)
        return _final(text, confidence)


class PocketsphinxSTT(_OfflineSTT):
    def __init__(self, vad: vad.VAD) -> None:
        pool = models.decoders()
        super().__init__(pool.transcribe, streaming=True)
        self._pool, self._vad = pool, vad

    @property
    def model(self) -> str:
        return "pocketsphinx-en-us"

    @property
    def provider(self) -> str:
        return "pocketsphinx"

    def stream(
        self,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> stt.RecognizeStream:
        return _IncrementalStream(self, self._vad, conn_options)


class _IncrementalStream(stt.RecognizeStream):
    def __init__(self, owner: PocketsphinxSTT, vad: vad.VAD, conn_options: APIConnectOptions):
        super().__init__(stt=owner, conn_options=conn_options, sample_rate=models.STT_SAMPLE_RATE)
        self._vad = vad
        self._pool = owner._pool

    async def _run(self) -> None:
        vad_stream = self._vad.stream()

        async def forward() -> None:
            async for frame in self._input_ch:
                if isinstance(frame, self._FlushSentinel):
                    vad_stream.flush()
                else:
                    vad_stream.push_frame(frame)
            vad_stream.end_input()

        tasks = [asyncio.create_task(forward()), asyncio.create_task(self._recognise(vad_stream))]
        try:
            await asyncio.gather(*tasks)
        finally:
            await utils.aio.cancel_and_wait(*tasks)
            await vad_stream.aclose()

    async def _recognise(self, vad_stream: vad.VADStream) -> None:
        utterance: _Utterance | None = None
        cmn: str | None = None  # this caller's cepstral mean, kept between utterances
        try:
            async for event in vad_stream:
                if event.type == vad.VADEventType.START_OF_SPEECH:
                    self._event_ch.send_nowait(stt.SpeechEvent(stt.SpeechEventType.START_OF_SPEECH))
                    if utterance is not None:  # a flush cut the last one short
                        await utterance.abandon()
                    # The VAD's buffer: its padding before the speech, and the speech so far.
                    utterance = _Utterance(self._pool, cmn)
                    await utterance.feed(event.frames, force=True)
                elif event.type == vad.VADEventType.INFERENCE_DONE and utterance is not None:
                    await utterance.feed(event.frames)  # this window's audio, in order
                elif event.type == vad.VADEventType.END_OF_SPEECH and utterance is not None:
                    ended = time.time() - event.silence_duration - event.inference_duration
                    self._event_ch.send_nowait(
                        stt.SpeechEvent(stt.SpeechEventType.END_OF_SPEECH, speech_end_time=ended)
                    )
                    text, confidence, cmn = await utterance.finish()
                    utterance = None
                    if text:
                        self._event_ch.send_nowait(_final(text, confidence, speech_end_time=ended))
        finally:
            if utterance is not None:
                await utterance.abandon()


class _Utterance:
    """One stretch of speech on one decoder, taken from the pool when the
    speech starts and given back when it ends."""

    def __init__(self, pool: models.DecoderPool, cmn: str | None) -> None:
        self._pool = pool
        self._cmn = cmn
        self._decoder = None
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        # A cancelled await leaves its thread running: the next call waits for it.
        self._lock = threading.Lock()

    async def feed(self, frames: list[rtc.AudioFrame], *, force: bool = False) -> None:
        for frame in frames:
            self._pending.append(bytes(frame.data))
            self._pending_bytes += len(frame.data)
        if force or self._pending_bytes >= 2 * models.STT_SAMPLE_RATE * FEED_SECONDS:
            await models.off_loop(self._decode_pending)

    async def finish(self) -> tuple[str, float, str]:
        """The words, a confidence, and the caller's adapted cepstral mean."""
        return await models.off_loop(self._end)

    async def abandon(self) -> None:
        await models.off_loop(self._release)

    # -- in the decoding thread (one call at a time per utterance) --------------

    def _decode_pending(self) -> None:
        with self._lock:
            self._decode()

    def _decode(self) -> None:
        if self._decoder is None:
            self._decoder = self._pool.take(self._cmn)
            self._decoder.start_utt()
        pcm, self._pending, self._pending_bytes = b"".join(self._pending), [], 0
        if pcm:
            self._decoder.process_raw(pcm, False, False)

    def _end(self) -> tuple[str, float, str]:
        with self._lock:
            self._decode()
            decoder, self._decoder = self._decoder, None
            try:
                decoder.end_utt()
                text, confidence = decoder.hypothesis()
            finally:
                cmn = self._pool.give(decoder)
            return text, confidence, cmn

    def _release(self) -> None:
        with self._lock:
            if self._decoder is not None:
                decoder, self._decoder = self._decoder, None
                decoder.end_utt()
                self._pool.give(decoder)


class WhisperSTT(_OfflineSTT):
    """Whisper recognises whole utterances: the session wraps it with its VAD
    (livekit's StreamAdapter), and the caller waits for the decoding at the
    end of each (~0.3–0.5 s on a core) — the price of hearing a phone line."""

    def __init__(self) -> None:
        super().__init__(models.whisper_transcribe, streaming=False)
        models.whisper()

    @property
    def model(self) -> str:
        return "whisper-tiny.en"

    @property
    def provider(self) -> str:
        return "faster-whisper"


def _final(text: str, confidence: float, speech_end_time: float | None = None) -> stt.SpeechEvent:
    return stt.SpeechEvent(
        type=stt.SpeechEventType.FINAL_TRANSCRIPT,
        request_id=utils.shortuuid("offline_"),
        alternatives=[stt.SpeechData(language=LANGUAGE, text=text, confidence=confidence)],
        speech_end_time=speech_end_time,
    )


def to_pcm16(buffer: utils.AudioBuffer, sample_rate: int) -> bytes:
    """Frames of any rate and channel count → mono 16-bit PCM at `sample_rate`."""
    frame = rtc.combine_audio_frames(buffer)
    if frame.num_channels > 1:
        samples = np.frombuffer(frame.data, dtype=np.int16).reshape(-1, frame.num_channels)
        mono = samples.mean(axis=1).astype(np.int16)
        frame = rtc.AudioFrame(mono.tobytes(), frame.sample_rate, 1, len(mono))
    if frame.sample_rate == sample_rate:
        return bytes(frame.data)
    resampler = rtc.AudioResampler(frame.sample_rate, sample_rate, num_channels=1)
    out = resampler.push(frame) + resampler.flush()
    return b"".join(bytes(f.data) for f in out)
