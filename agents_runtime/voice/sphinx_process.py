"""A pocketsphinx decoder in a process of its own.

pocketsphinx's Python binding holds the GIL while it decodes — about a
quarter of real time for a speaking caller, ~0.35 s to load a decoder —
and in the web process that stalled the event loop that carries every
call's audio: with four calls its timers ran up to 0.5 s late, and every
reply with them. A child process has a GIL of its own; the web process only
hands it audio over a pipe, waiting in a speech thread (a pipe read
releases the GIL).
"""

from __future__ import annotations

import multiprocessing
import threading
from typing import Any

SAMPLE_RATE = 16_000  # pocketsphinx's en-US model


class RemoteDecoder:
    """The parts of pocketsphinx's Decoder the recogniser uses, as blocking
    calls to a decoder in a child process. One caller at a time (the pool
    hands it to one utterance); the child ends with the process."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a threaded process
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child,), name="pocketsphinx", daemon=True
        )
        self._process.start()
        child.close()
        self._lock = threading.Lock()
        self._call("ready")  # the model has loaded

    def start_utt(self) -> None:
        self._call("start_utt")

    def process_raw(self, pcm16: bytes, no_search: bool = False, full_utt: bool = False) -> None:
        self._call("process_raw", pcm16, no_search, full_utt)

    def end_utt(self) -> None:
        self._call("end_utt")

    def hypothesis(self) -> tuple[str, float]:
        """The finished utterance's words and a confidence in [0, 1]."""
        return self._call("hypothesis")

    def get_cmn(self, update: bool = False) -> str:
        return self._call("get_cmn", update)

    def set_cmn(self, cmn: str) -> None:
        self._call("set_cmn", cmn)

    def _call(self, op: str, *args: Any) -> Any:
        with self._lock:
            self._conn.send((op, args))
            ok, value = self._conn.recv()
        if not ok:
            raise RuntimeError(f"pocketsphinx {op} failed: {value}")
        return value


def _serve(conn) -> None:
    """The child: one decoder, one request at a time, until the pipe closes."""
    from pocketsphinx import Decoder

    decoder = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")
    while True:
        try:
            op, args = conn.recv()
        except (EOFError, OSError):
            return
        try:
            if op == "ready":
                value = None
            elif op == "hypothesis":
                value = _hypothesis(decoder)
            else:
                value = getattr(decoder, op)(*args)
            conn.send((True, value))
        except Exception as exc:  # reported to the caller, the decoder stays
            conn.send((False, f"{type(exc).__name__}: {exc}"))


def _hypothesis(decoder) -> tuple[str, float]:
    hyp = decoder.hyp()
    if hyp is None or not hyp.hypstr.strip():
        return "", 0.0
    # prob is a log probability; exp() of it is the posterior, usable as a confidence.
    confidence = min(1.0, max(0.0, decoder.get_logmath().exp(hyp.prob)))
    return hyp.hypstr.strip(), confidence
