"""The offline speech plugins on real audio, through livekit-agents' own STT
and TTS interfaces: Piper speaks a sentence, pocketsphinx hears it back. The
models load once for the module; nothing may be fetched from the network."""

from __future__ import annotations

import socket

import pytest
from livekit import rtc
from livekit.agents import stt as lk_stt

from agents_runtime.voice import models
from agents_runtime.voice.offline_stt import PocketsphinxSTT, to_pcm16
from agents_runtime.voice.offline_tts import PiperTTS, clauses


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
    models.load_speech()  # silero, Piper and a decoder: once for the module
    yield
    socket.socket.connect = real


async def speak(tts: PiperTTS, text: str) -> list[rtc.AudioFrame]:
    frames = []
    async with tts.synthesize(text) as stream:
        async for audio in stream:
            frames.append(audio.frame)
    return frames


async def test_piper_speaks_and_pocketsphinx_hears_it(offline_only):
    tts, stt = PiperTTS(), PocketsphinxSTT(models.silero_vad())
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


async def test_the_stream_recognises_each_utterance_as_it_is_spoken(offline_only):
    """The streaming recogniser marks utterances with its VAD and decodes
    while they are spoken: two questions with a pause between them come back
    as two final transcripts, each after its own end of speech, at any rate
    the audio arrives in (here 48 kHz, as from a LiveKit room)."""
    tts = PiperTTS()
    first = to_pcm16(await speak(tts, "What is your refund policy?"), 48000)
    second = to_pcm16(await speak(tts, "I want to talk to a person."), 48000)
    pause = bytes(2 * 48000)  # a second of silence
    stream = PocketsphinxSTT(models.silero_vad()).stream()
    audio = pause + first + pause + second + pause
    step = 2 * 480  # 10 ms frames
    for start in range(0, len(audio), step):
        piece = audio[start : start + step]
        stream.push_frame(rtc.AudioFrame(piece, 48000, 1, len(piece) // 2))
    stream.end_input()
    kinds, finals = [], []
    async for event in stream:
        kinds.append(event.type)
        if event.type == lk_stt.SpeechEventType.FINAL_TRANSCRIPT:
            finals.append(event.alternatives[0].text)
            assert event.speech_end_time is not None
    start, end, final = (
        lk_stt.SpeechEventType.START_OF_SPEECH,
        lk_stt.SpeechEventType.END_OF_SPEECH,
        lk_stt.SpeechEventType.FINAL_TRANSCRIPT,
    )
    assert kinds == [start, end, final, start, end, final], kinds
    assert "refund" in finals[0].split() and "policy" in finals[0].split(), finals
    assert "person" in finals[1].split() or "talk" in finals[1].split(), finals
    # Every decoder went back to the pool.
    pool = models.decoders()
    with pool.decoder() as one, pool.decoder() as two:
        assert one is not two


def test_sentences_are_synthesised_a_clause_at_a_time():
    """The first audio waits for the first clause only; a clause is not cut
    shorter than a few words, and nothing is lost or reordered."""
    said = list("hɪɹ ɪz wʌt aʊɚ nɑːlɪdʒ beɪs sɛz: aʊɚ ɹiːfʌnd pɑːlɪsi: ɪts ɡʊd, jɛs.")
    pieces = clauses(said)
    assert [p for piece in pieces for p in piece] == said
    assert "".join(pieces[0]) == "hɪɹ ɪz wʌt aʊɚ nɑːlɪdʒ beɪs sɛz:"
    assert all(len(piece) >= 12 for piece in pieces[:-1])
    assert "".join(pieces[-1]).strip() == "ɪts ɡʊd, jɛs."  # "its good," is too short to stand alone
    assert clauses([]) == []


def test_stereo_and_other_rates_become_mono_16k():
    # 0.1 s of stereo at 48 kHz: left loud, right silent.
    import numpy as np

    left = (np.sin(np.linspace(0, 200 * np.pi, 4800)) * 10000).astype(np.int16)
    stereo = np.stack([left, np.zeros_like(left)], axis=1).reshape(-1)
    frame = rtc.AudioFrame(stereo.tobytes(), 48000, 2, 4800)
    pcm = np.frombuffer(to_pcm16([frame], 16000), dtype=np.int16)
    assert abs(len(pcm) - 1600) <= 64
    assert 4000 < np.abs(pcm).max() < 5500  # averaged with the silent channel: about half
