"""The offline speech plugins on real audio, through livekit-agents' own STT
and TTS interfaces: Piper speaks a sentence, pocketsphinx hears it back. The
models load once for the module; nothing may be fetched from the network."""

from __future__ import annotations

import socket

import pytest
from livekit import rtc

from agents_runtime.voice import models
from agents_runtime.voice.offline_stt import PocketsphinxSTT, to_pcm16
from agents_runtime.voice.offline_tts import PiperTTS


@pytest.fixture(scope="module")
def offline_only():
    """Any connection beyond this machine fails the test: the models must come
    from the wheels."""
    real = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and not (host.startswith("127.") or host in ("::1", "localhost")):
            raise AssertionError(f"network access to {address} during offline speech")
        return real(self, address)

    socket.socket.connect = guarded
    models.prewarm()  # loads silero, Piper and a decoder: once for the module
    yield
    socket.socket.connect = real


async def speak(tts: PiperTTS, text: str) -> list[rtc.AudioFrame]:
    frames = []
    async with tts.synthesize(text) as stream:
        async for audio in stream:
            frames.append(audio.frame)
    return frames


async def test_piper_speaks_and_pocketsphinx_hears_it(offline_only):
    tts, stt = PiperTTS(), PocketsphinxSTT()
    frames = await speak(tts, "I would like to know your refund policy.")
    assert frames and {f.sample_rate for f in frames} == {22050}
    seconds = sum(f.samples_per_channel for f in frames) / 22050
    assert 1.0 < seconds < 5.0

    # What a LiveKit room delivers: 48 kHz frames.
    resampler = rtc.AudioResampler(22050, 48000, num_channels=1)
    at_48k = [out for f in frames for out in resampler.push(f)] + resampler.flush()
    event = await stt.recognize(at_48k)
    # Piper's voice varies a little from run to run (its model samples noise),
    # and pocketsphinx now and then mishears a word of it ("refund all sick"):
    # the sentence must come back, near enough word for word.
    said = ["i", "would", "like", "to", "know", "your", "refund", "policy"]
    heard = event.alternatives[0].text.split()
    same = sum(a == b for a, b in zip(said, heard, strict=False))
    assert "refund" in heard and same >= 6, heard
    assert event.alternatives[0].language == "en-US"


async def test_speech_is_spoken_sentence_by_sentence(offline_only):
    tts = PiperTTS()
    one = sum(f.samples_per_channel for f in await speak(tts, "Thank you."))
    two = sum(f.samples_per_channel for f in await speak(tts, "Thank you. Goodbye."))
    assert two > one
    faster = sum(f.samples_per_channel for f in await speak(PiperTTS(speed=1.5), "Thank you."))
    assert faster < one


def test_stereo_and_other_rates_become_mono_16k():
    # 0.1 s of stereo at 48 kHz: left loud, right silent.
    import numpy as np

    left = (np.sin(np.linspace(0, 200 * np.pi, 4800)) * 10000).astype(np.int16)
    stereo = np.stack([left, np.zeros_like(left)], axis=1).reshape(-1)
    frame = rtc.AudioFrame(stereo.tobytes(), 48000, 2, 4800)
    pcm = np.frombuffer(to_pcm16([frame], 16000), dtype=np.int16)
    assert abs(len(pcm) - 1600) <= 64
    assert 4000 < np.abs(pcm).max() < 5500  # averaged with the silent channel: about half
