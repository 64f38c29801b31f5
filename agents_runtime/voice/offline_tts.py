"""Text to speech offline: a Piper voice as a livekit-agents TTS. Piper
synthesises a clause at a time, and each clause's audio is pushed as soon as
it exists, so the first words play while the rest is made: a reply's first
audio costs its first clause (~80 ms for "Here is what our knowledge base
says:"), not its first sentence (~300 ms, more on a busy machine). Not
streaming in livekit's sense (text arrives whole); an AgentSession feeds it
sentence by sentence through its StreamAdapter."""

from __future__ import annotations

import threading

import numpy as np
from livekit.agents import APIConnectOptions, tts, utils
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS

from agents_runtime.voice import models

# Piper phonemizes through espeak-ng, whose C state is global: one at a time
# per process. The ONNX synthesis that follows runs concurrently.
_ESPEAK = threading.Lock()
# A sentence is cut after a comma, colon or semicolon once the piece holds
# this many phonemes (~3 words): shorter pieces would sound clipped.
CLAUSE_BREAKS = frozenset(",:;")
MIN_CLAUSE_PHONEMES = 12


class PiperTTS(tts.TTS):
    def __init__(self, *, speed: float = 1.0) -> None:
        self._voice = models.piper_voice()
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=False),
            sample_rate=self._voice.config.sample_rate,
            num_channels=1,
        )
        self._length_scale = self._voice.config.length_scale / max(0.5, min(speed, 2.0))

    @property
    def model(self) -> str:
        return "piper-en_US-joe-medium"

    @property
    def provider(self) -> str:
        return "piper"

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        return _PiperStream(tts=self, input_text=text, conn_options=conn_options)

    def phonemize(self, text: str) -> list[list[str]]:
        with _ESPEAK:
            return self._voice.phonemize(text)

    def speak(self, phonemes: list[str]) -> bytes:
        """One sentence's phonemes → 16-bit mono PCM at the voice's rate. Blocking."""
        from piper import SynthesisConfig

        ids = self._voice.phonemes_to_ids(phonemes)
        audio = self._voice.phoneme_ids_to_audio(
            ids, SynthesisConfig(length_scale=self._length_scale)
        )
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        if peak > 1e-8:
            audio = audio / peak  # what Piper's own synthesize() does
        return (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16).tobytes()


class _PiperStream(tts.ChunkedStream):
    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        piper: PiperTTS = self._tts  # type: ignore[assignment]
        output_emitter.initialize(
            request_id=utils.shortuuid("piper_"),
            sample_rate=piper.sample_rate,
            num_channels=1,
            mime_type="audio/pcm",
        )
        sentences = await models.off_loop(piper.phonemize, self.input_text)
        for sentence in sentences:
            for phonemes in clauses(sentence):
                output_emitter.push(await models.off_loop(piper.speak, phonemes))
        output_emitter.flush()


def clauses(phonemes: list[str]) -> list[list[str]]:
    """A sentence's phonemes in the pieces that are synthesised one by one,
    each keeping its punctuation (Piper pauses for it)."""
    pieces: list[list[str]] = [[]]
    for phoneme in phonemes:
        pieces[-1].append(phoneme)
        if phoneme in CLAUSE_BREAKS and len(pieces[-1]) >= MIN_CLAUSE_PHONEMES:
            pieces.append([])
    return [piece for piece in pieces if piece]
