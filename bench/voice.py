"""Voice as shipped: callers over the hub's own WebSocket transport
(`/public/voice/ws`) to `python -m hub serve`, started as the README starts
it (embedded PostgreSQL, offline pipeline: silero VAD, pocketsphinx, the
offline responder with retrieval, Piper), driven only from outside.

1. Latency, measured by the caller: end of its speech → the first agent
   audio on the socket. The callers' questions are spoken by espeak-ng (not
   Piper, the agent's own voice), streamed in real time in 20 ms frames;
   each waits for the whole answer, then asks the next. p50 and p90 at 1, 2
   and 4 simultaneous calls on the one web process (`--calls`), at least
   `--turns` turns per level; the process's CPU per call beside them.
2. The lower bound, each stage measured alone in this run on the same
   input: the endpointing wait (silero's end of speech after the question's
   last sample, in audio time), recognition left at the end of speech
   (pocketsphinx's final pass after the question was decoded as it came),
   the offline responder's first words, and Piper's first audio of the
   reply. What the caller waits beyond their sum is the runtime's share
   (retrieval, livekit-agents, the transport, scheduling).
3. Phone audio: word error rate on bench/wer.py's twenty phrases through
   μ-law 8 kHz against the same phrases at 16 kHz (`--no-wer` skips it).

    python -m bench.voice [--turns 20] [--calls 1,2,4] [--no-wer]

Prints one JSON object. Sessions per process: the largest level whose p90
stays ≤ 1.2 s (docs/voice.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import numpy as np

from agents_runtime.llm import ChatRequest, OfflineResponder, Passage
from agents_runtime.voice import models
from agents_runtime.voice.offline_tts import PiperTTS
from bench import wer
from bench.cluster import children_of, cpu_seconds
from bench.report import emit, table
from bench.shipped import Served
from fakes.voice_line import Line, espeak, silence

KNOWLEDGE = (
    "Refunds: customers may return any product within thirty days for a full refund.\n\n"
    "Opening hours: we are open Monday to Friday, from nine to five.\n\n"
    "Shipping: every order ships within two days.\n\n"
    "Passwords: reset your password from the link on the sign in page.\n"
)
QUESTIONS = [
    "What is your refund policy?",
    "When are you open?",
    "How long does shipping take?",
    "How do I reset my password?",
]
RATE = 16_000
SILENT = 64  # |sample| at or below this is silence: espeak-ng pads its speech with it
TARGET_P90 = 1.2  # seconds: what a call may wait at p90 for the process to take it


def summary(seconds: list[float]) -> dict:
    ms = sorted(s * 1000 for s in seconds)
    if not ms:
        return {"turns": 0}

    def at(p: float) -> float:
        return round(ms[min(len(ms) - 1, round(p / 100 * (len(ms) - 1)))], 1)

    return {"turns": len(ms), "p50_ms": at(50), "p90_ms": at(90), "max_ms": round(ms[-1], 1)}


# -- the hub, as shipped ----------------------------------------------------------


@contextlib.asynccontextmanager
async def serve():
    """`python -m hub serve` with nothing configured, in a data dir of its own."""
    root = Path(tempfile.mkdtemp(prefix="syntera-bench-voice-"))
    # The caps are lifted: the bench measures what the process does, not where it refuses.
    web = Served(
        root,
        SYNTERA_DEMO="0",
        LOG_LEVEL="WARNING",
        VOICE_SESSIONS_PER_PROCESS="100",
        VOICE_SESSIONS_PER_COMPANY="100",
    )
    await web.start()
    try:
        await web.wait_healthy()
        yield web
    finally:
        await web.stop()
        shutil.rmtree(root, ignore_errors=True)


async def tenant(http: aiohttp.ClientSession, base: str) -> tuple[dict, dict, dict]:
    """A company, its voice agent with the knowledge above, a publishable key."""
    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    async with http.post(
        f"{base}/api/auth/signup",
        json={"email": email, "password": "correct horse battery", "company_name": "Bench"},
    ) as response:
        staff = {"Authorization": f"Bearer {(await response.json())['access_token']}"}
    async with http.post(f"{base}/api/agents", json={"name": "Voice"}, headers=staff) as r:
        agent = await r.json()
    form = aiohttp.FormData()
    form.add_field("file", KNOWLEDGE.encode(), filename="support.txt")
    form.add_field("agent_id", agent["id"])
    async with http.post(f"{base}/api/knowledge-base/upload", data=form, headers=staff) as r:
        document = await r.json()
    for _ in range(600):
        async with http.get(f"{base}/api/knowledge-base/{document['id']}", headers=staff) as r:
            if (await r.json())["status"] == "processed":
                break
        await asyncio.sleep(0.2)
    else:
        raise TimeoutError("the knowledge document was not processed")
    async with http.post(
        f"{base}/api/agents/{agent['id']}/keys", json={"allowed_origins": ["*"]}, headers=staff
    ) as r:
        key = {"Authorization": f"Bearer {(await r.json())['key']}"}
    return agent, staff, key


# -- the callers ------------------------------------------------------------------


def spoken(text: str, voice: str) -> bytes:
    """espeak-ng says `text` (16 kHz PCM), without the silence it adds around
    it: the caller's end of speech is its last spoken sample."""
    pcm = espeak(text, RATE, voice=voice, speed=wer.SPEED)
    loud = np.flatnonzero(np.abs(np.frombuffer(pcm, dtype=np.int16)) > SILENT)
    return pcm[2 * loud[0] : 2 * (loud[-1] + 1)]


async def until(predicate, every: float, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the voice session stopped answering")
        await asyncio.sleep(every)


def _answers(line: Line) -> int:
    return sum(1 for t in line.of_type("transcript") if t["role"] == "agent")


async def ask(line: Line, question: bytes) -> float:
    """Say the question; wait until the whole answer has been heard. Returns
    seconds from the end of the caller's speech to the first reply audio."""
    answers = _answers(line)
    line.first_audio_at = None
    line.say(question)
    await until(lambda: not line.speaking, every=0.002)
    spoke_until = time.monotonic()
    await until(lambda: _answers(line) > answers, every=0.01)
    await asyncio.sleep(0.4)  # a breath between turns
    if line.first_audio_at is None or line.first_audio_at < spoke_until:
        raise RuntimeError("the agent answered without speaking")
    return line.first_audio_at - spoke_until


async def one_call(
    http: aiohttp.ClientSession, base: str, agent: dict, key: dict, questions, turns: int
) -> tuple[list[float], str]:
    async with http.post(
        f"{base}/public/conversations",
        json={"agent_id": agent["id"], "channel": "voice"},
        headers=key,
    ) as response:
        started = await response.json()
    ws = await http.ws_connect(f"{base}/public/voice/ws?token={started['token']}")
    line = Line(ws, RATE)
    await until(lambda: bool(line.of_type("ready")) or line.closed.is_set(), every=0.05)
    if line.closed.is_set():
        raise RuntimeError(f"the call was refused: {line.close_code} {line.frames}")
    await asyncio.sleep(random.uniform(0.2, 2.0))  # callers do not speak in step
    waits = []
    try:
        for turn in range(turns):
            waits.append(await ask(line, questions[turn % len(questions)]))
    finally:
        await line.close()
    return waits, started["id"]


async def level(
    http, base: str, web: Served, agent, key, questions, calls: int, turns: int
) -> dict:
    per_call = -(-turns // calls)
    lag0 = await loop_lag(http, base)
    cpu0, wall0 = web_cpu(web), time.monotonic()
    results = await asyncio.gather(
        *(one_call(http, base, agent, key, questions, per_call) for _ in range(calls))
    )
    cpu = (web_cpu(web) - cpu0) / (time.monotonic() - wall0)
    lag = {bound: n - lag0.get(bound, 0) for bound, n in (await loop_lag(http, base)).items()}
    waits = [w for call_waits, _ in results for w in call_waits]
    return {
        "calls": calls,
        **summary(waits),
        "web_cpu_cores": round(cpu, 2),
        "event_loop_lag_p99_ms": lag_percentile(lag, 0.99),
        "conversations": [conversation for _, conversation in results],
    }


def web_cpu(web: Served) -> float:
    """CPU seconds of the web process and its children (the pocketsphinx decoders)."""
    return sum(cpu_seconds(pid) for pid in [web.proc.pid, *children_of(web.proc.pid)])


async def loop_lag(http, base: str) -> dict[float, int]:
    """The web process's event_loop_lag_seconds histogram: count per bucket bound."""
    async with http.get(f"{base}/metrics") as response:
        text = await response.text()
    counts = {}
    for line in text.splitlines():
        if line.startswith("event_loop_lag_seconds_bucket"):
            bound = line.split('le="')[1].split('"')[0]
            counts[float(bound)] = float(line.rsplit(" ", 1)[1])
    return counts


def lag_percentile(cumulative: dict[float, int], q: float) -> float | None:
    """The bucket bound (ms) below which `q` of the loop's wake-ups fell."""
    total = cumulative.get(float("inf"), 0)
    for bound in sorted(cumulative):
        if total and cumulative[bound] >= q * total:
            return round(bound * 1000, 1) if bound != float("inf") else None
    return None


async def stored(http, base: str, staff: dict, conversation_id: str) -> tuple[list, list]:
    url = f"{base}/api/conversations/{conversation_id}/messages?limit=200"
    async with http.get(url, headers=staff) as response:
        messages = (await response.json())["messages"]
    return (
        [m for m in messages if m["sender_type"] == "user"],
        [m for m in messages if m["sender_type"] == "agent"],
    )


# -- the lower bound, each stage alone --------------------------------------------


async def endpointing_wait(question: bytes) -> float:
    """Audio seconds from the question's last sample to silero's end of speech."""
    from livekit import rtc
    from livekit.agents import vad

    stream = models.silero_vad().stream()
    audio = silence(0.3, RATE) + question + silence(1.0, RATE)
    step = 2 * int(0.02 * RATE)
    for start in range(0, len(audio), step):
        piece = audio[start : start + step]
        stream.push_frame(rtc.AudioFrame(piece, RATE, 1, len(piece) // 2))
    stream.end_input()
    spoken_until = 0.3 + len(question) / 2 / RATE
    ended = None
    async for event in stream:
        if event.type == vad.VADEventType.END_OF_SPEECH and ended is None:
            ended = event.timestamp
    await stream.aclose()
    if ended is None:
        raise RuntimeError("the VAD never ended the question")
    return ended - spoken_until


def final_pass(question: bytes) -> float:
    """Seconds pocketsphinx needs at the end of speech when it has decoded the
    question as it was spoken (what the streaming STT leaves for the end)."""
    audio = silence(0.5, RATE) + question + silence(models.END_OF_TURN_SILENCE, RATE)
    with models.decoders().decoder() as decoder:
        decoder.start_utt()
        decoder.process_raw(audio, False, False)
        started = time.perf_counter()
        decoder.end_utt()
        decoder.hypothesis()
        return time.perf_counter() - started


async def first_words(question: str) -> float:
    passages = [Passage("doc", f"chunk{n}", p, 1.0) for n, p in enumerate(KNOWLEDGE.split("\n\n"))]
    request = ChatRequest(
        model="offline",
        messages=[{"role": "user", "content": question}],
        temperature=0.0,
        max_tokens=200,
        question=question,
        passages=passages,
    )
    started = time.perf_counter()
    async for _ in OfflineResponder().stream(request):
        break
    return time.perf_counter() - started


async def first_audio(tts: PiperTTS, reply: str) -> float:
    started = time.perf_counter()
    async with tts.synthesize(reply) as stream:
        async for _ in stream:
            break
    return time.perf_counter() - started


async def lower_bound(questions: list[bytes], texts: list[str], replies: list[str]) -> dict:
    """p50 of each stage alone (ms) over the questions and the stored replies."""
    tts = PiperTTS()
    stages: dict[str, list[float]] = {
        "endpointing_wait_ms": [],
        "recognition_final_pass_ms": [],
        "first_token_ms": [],
        "first_audio_ms": [],
    }
    for _ in range(3):
        for audio, text in zip(questions, texts, strict=True):
            stages["endpointing_wait_ms"].append(await endpointing_wait(audio))
            stages["recognition_final_pass_ms"].append(await asyncio.to_thread(final_pass, audio))
            stages["first_token_ms"].append(await first_words(text))
        for reply in replies:
            stages["first_audio_ms"].append(await first_audio(tts, reply))
    result = {name: round(statistics.median(v) * 1000, 1) for name, v in stages.items()}
    result["sum_ms"] = round(sum(result.values()), 1)
    return result


# -- the run ----------------------------------------------------------------------


async def main(turns: int, levels: list[int], with_wer: bool) -> dict:
    if shutil.which("espeak-ng") is None:
        sys.exit("espeak-ng is missing: apt-get install espeak-ng (scripts/test installs it)")
    models.load_speech()  # on the main thread, as the hub does
    # Each question in each of bench/wer's voices, taken in turn.
    texts = [q for q in QUESTIONS for _ in wer.VOICES]
    questions = [spoken(q, voice) for q in QUESTIONS for voice in wer.VOICES]
    result: dict = {"cpu_count": os.cpu_count(), "questions": QUESTIONS}
    async with serve() as web, aiohttp.ClientSession() as http:
        base = web.url
        agent, staff, key = await tenant(http, base)
        result["levels"] = []
        heard: set[str] = set()
        replies: set[str] = set()
        for calls in levels:
            measured = await level(http, base, web, agent, key, questions, calls, turns)
            stages: dict[str, list[float]] = {}
            for conversation in measured.pop("conversations"):
                users, agents = await stored(http, base, staff, conversation)
                heard |= {m["content"] for m in users}
                replies |= {m["content"] for m in agents}
                for message in agents:
                    latency = (message["ai_metadata"] or {}).get("latency") or {}
                    for stage, ms in latency.items():
                        if ms is not None:
                            stages.setdefault(stage, []).append(ms)
            # What the agent itself measured (livekit-agents' metrics, stored with each reply).
            measured["agent_measured_p50_ms"] = {
                k: statistics.median(v) for k, v in sorted(stages.items())
            }
            result["levels"].append(measured)
            print(json.dumps(measured), file=sys.stderr, flush=True)
    result["heard"] = sorted(heard)
    result["replies"] = sorted(replies)
    result["lower_bound_alone_p50_ms"] = bound = await lower_bound(
        questions, texts, sorted(replies)
    )
    single = result["levels"][0]
    result["runtime_share_p50_ms"] = round(single["p50_ms"] - bound["sum_ms"], 1)
    within = [lv["calls"] for lv in result["levels"] if lv["p90_ms"] <= TARGET_P90 * 1000]
    result["sessions_per_process_at_p90_1200ms"] = max(within) if within else 0
    if with_wer:
        result["wer"] = await asyncio.to_thread(wer.measure)
    return result


STAGES = {
    "endpointing_wait_ms": "endpointing: the question's last sample → silero's end of speech"
    " (audio time; 0.35 s of silence + its smoothing)",
    "recognition_final_pass_ms": "recognition left at the end of speech: pocketsphinx's final"
    " pass after decoding the question as it came",
    "first_token_ms": "the offline responder's first words",
    "first_audio_ms": "Piper's first audio of the reply (its first clause)",
}


def print_report(result: dict) -> None:
    emit(
        "voice",
        table(
            [
                "calls at once",
                "p50",
                "p90",
                "max",
                "web process + its recognisers, cores",
                "event loop lag p99",
            ],
            [
                (
                    lv["calls"],
                    f"{lv['p50_ms']:.0f} ms",
                    f"{lv['p90_ms']:.0f} ms",
                    f"{lv['max_ms']:.0f} ms",
                    lv["web_cpu_cores"],
                    f"{lv['event_loop_lag_p99_ms']} ms",
                )
                for lv in result["levels"]
            ],
        ),  # fmt: skip
    )
    bound = result["lower_bound_alone_p50_ms"]
    rows = [(label, f"{bound[key]:.0f} ms") for key, label in STAGES.items()]
    rows.append(("**sum**", f"**{bound['sum_ms']:.0f} ms**"))
    rows.append(("**the runtime's own share** (one call's p50 − the sum)",
                 f"**{result['runtime_share_p50_ms']:.0f} ms**"))  # fmt: skip
    emit("voice-stages", table(["stage", "alone"], rows))
    if "wer" in result:
        wer.print_report(result["wer"])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=20, help="turns per level, at least")
    parser.add_argument("--calls", default="1,2,4", help="simultaneous calls per level")
    parser.add_argument("--no-wer", action="store_true")
    args = parser.parse_args()
    levels = [int(n) for n in args.calls.split(",")]
    measured = asyncio.run(main(args.turns, levels, not args.no_wer))
    print_report(measured)
    print(json.dumps(measured, indent=2))
