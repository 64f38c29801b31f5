"""Speech to text offline: pocketsphinx as a livekit-agents STT. It recognises
whole utterances (not streaming), so an AgentSession wraps it with its VAD in
a StreamAdapter, as it does any batch STT."""

from __future__ import annotations

import asyncio

import numpy as np
from livekit import rtc
from livekit.agents import APIConnectOptions, LanguageCode, stt, utils
from livekit.agents.types import NOT_GIVEN, NotGivenOr

from agents_runtime.voice import models


class PocketsphinxSTT(stt.STT):
    def __init__(self) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        self._pool = models.decoders()

    @property
    def model(self) -> str:
        return "pocketsphinx-en-us"

    @property
    def provider(self) -> str:
        return "pocketsphinx"

    async def _recognize_impl(
        self,
        buffer: utils.AudioBuffer,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions,
    ) -> stt.SpeechEvent:
        pcm = to_pcm16(buffer, models.STT_SAMPLE_RATE)
        text, confidence = await asyncio.to_thread(self._pool.transcribe, pcm)
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            request_id=utils.shortuuid("pocketsphinx_"),
            alternatives=[
                stt.SpeechData(language=LanguageCode("en-US"), text=text, confidence=confidence)
            ],
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
