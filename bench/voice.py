"""Voice over the hub's own WebSocket transport, on the offline pipeline
(silero VAD, pocketsphinx, the offline responder with retrieval, Piper).

1. Latency: one caller asks "what is your refund policy" (Piper's voice,
   streamed in real time) `--turns` times; p50 of each stage as the voice
   agent measured it (ai_metadata.latency) and of what the caller saw (end
   of its speech → first reply audio on the socket).
2. The baseline, in the same run: each compute stage timed directly on the
   same input — pocketsphinx on the question, retrieval, the offline
   responder, Piper's first sentence of the reply. The runtime's overhead
   per turn is what the agent measured minus that compute minus the
   deliberate waits (VAD's 0.55 s of silence, endpointing's 0.5 s).
3. CPU: `--sessions` callers at once, each asking again as soon as it has
   heard the answer; process CPU seconds per wall second per session, and
   what that makes per core.

    python -m bench.voice [--turns 20] [--sessions 1,2,4] [--window 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid

from aiohttp import FormData

from agents_runtime.llm import ChatRequest, OfflineResponder
from agents_runtime.retrieval import Retriever
from agents_runtime.voice import models
from agents_runtime.voice.offline_tts import PiperTTS
from bench.common import hub_client, scratch_database
from hub.services import SERVICES
from tests.voice_line import Line, silence, synthesize

QUESTION = "What is your refund policy?"
POLICY = "Our refund policy: returns are accepted within thirty days.\n"
VAD_SILENCE, ENDPOINTING = 0.55, 0.5  # seconds: livekit-agents' defaults, waited on purpose


def p50(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 1) if values else None


async def setup(hub):
    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    body = await (
        await hub.post(
            "/api/auth/signup",
            json={"email": email, "password": "correct horse battery", "company_name": "Bench"},
        )
    ).json()
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    agent = await (await hub.post("/api/agents", json={"name": "Voice"}, headers=headers)).json()
    form = FormData()
    form.add_field("file", POLICY.encode(), filename="policy.txt")
    form.add_field("agent_id", agent["id"])
    doc = await (await hub.post("/api/knowledge-base/upload", data=form, headers=headers)).json()

    async def processed() -> bool:
        url = f"/api/knowledge-base/{doc['id']}"
        return (await (await hub.get(url, headers=headers)).json())["status"] == "processed"

    await until(processed)
    key = await (
        await hub.post(
            f"/api/agents/{agent['id']}/keys", json={"allowed_origins": ["*"]}, headers=headers
        )
    ).json()
    return body["company"]["id"], agent, headers, {"Authorization": f"Bearer {key['key']}"}


async def call(hub, agent, key_headers) -> tuple[Line, str]:
    started = await (
        await hub.post(
            "/public/conversations",
            json={"agent_id": agent["id"], "channel": "voice"},
            headers=key_headers,
        )
    ).json()
    ws = await hub.ws_connect(f"/public/voice/ws?token={started['token']}")
    return Line(ws, 16_000), started["id"]


async def until(predicate, every: float = 0.1, within: float = 120.0) -> None:
    for _ in range(int(within / every)):
        if await predicate():
            return
        await asyncio.sleep(every)
    raise TimeoutError("the voice session stopped answering")


async def _true(value: bool) -> bool:
    return value


def _answers(line: Line) -> list[dict]:
    return [t for t in line.of_type("transcript") if t["role"] == "agent"]


async def ask(line: Line, question: bytes) -> float:
    """Say the question, wait until the whole answer was heard; returns
    seconds from the end of the caller's speech to the first reply audio."""
    answers = len(_answers(line))
    line.first_audio_at = None
    line.say(question)
    await until(lambda: _true(not line.speaking), every=0.005)
    spoke_until = time.monotonic()
    await until(lambda: _true(len(_answers(line)) > answers), every=0.01)
    await asyncio.sleep(0.3)  # a breath between turns
    return (line.first_audio_at or spoke_until) - spoke_until


async def latency(hub, agent, headers, key_headers, question: bytes, turns: int) -> dict:
    line, conversation_id = await call(hub, agent, key_headers)
    line.say(silence(0.3, 16_000))
    seen = []
    for _ in range(turns):
        seen.append(await ask(line, question) * 1000)
    await line.close()
    await asyncio.sleep(0.5)
    stored = await (
        await hub.get(f"/api/conversations/{conversation_id}/messages?limit=200", headers=headers)
    ).json()
    replies = [m for m in stored["messages"] if m["sender_type"] == "agent"]
    users = [m for m in stored["messages"] if m["sender_type"] == "user"]
    stage = {
        name: p50([r["ai_metadata"]["latency"][name] for r in replies])
        for name in (
            "transcript_ms",
            "end_of_turn_ms",
            "first_token_ms",
            "first_audio_ms",
            "total_ms",
        )
    }
    stage["retrieval_ms"] = p50([r["ai_metadata"].get("retrieval_ms") for r in replies])
    return {
        "turns": len(replies),
        "heard": sorted({u["content"] for u in users}),
        "reply": replies[0]["content"] if replies else None,
        "agent_measured_p50_ms": stage,
        "caller_end_of_speech_to_first_audio_p50_ms": p50(seen),
    }


async def compute_baseline(hub, company_id: str, agent: dict, question: bytes, reply: str) -> dict:
    """Each compute stage alone, on this turn's input (ms, p50 of 10)."""
    services = hub.app[SERVICES]
    decoders = models.decoders()
    # What the VAD hands the STT: its 0.5 s of padding before the speech and the silence after.
    question = silence(0.5, 16_000) + question + silence(VAD_SILENCE, 16_000)
    heard = decoders.transcribe(question)[0]
    retriever = Retriever(services, budget=5.0, channel="voice")
    responder, tts = OfflineResponder(), PiperTTS()
    stt, retrieval, llm, speech = [], [], [], []
    for _ in range(10):
        t = time.perf_counter()
        await asyncio.to_thread(decoders.transcribe, question)
        stt.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        found = await retriever.retrieve(uuid.UUID(company_id), uuid.UUID(agent["id"]), heard)
        retrieval.append((time.perf_counter() - t) * 1000)
        request = ChatRequest(
            model="offline",
            messages=[{"role": "user", "content": heard}],
            temperature=0.0,
            max_tokens=200,
            question=heard,
            passages=found.passages,
        )
        t = time.perf_counter()
        async for _ in responder.stream(request):
            break  # its first words
        llm.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        # The reply is one sentence to livekit's tokenizer, so Piper gets all of it.
        async with tts.synthesize(reply) as stream:
            async for _ in stream:
                break  # the first audio
        speech.append((time.perf_counter() - t) * 1000)
    return {
        "stt_ms": p50(stt),
        "retrieval_ms": p50(retrieval),
        "llm_first_token_ms": p50(llm),
        "tts_first_audio_ms": p50(speech),
    }


async def cpu(hub, agent, key_headers, question: bytes, sessions: int, window: float) -> dict:
    lines = [await call(hub, agent, key_headers) for _ in range(sessions)]
    stop = asyncio.Event()
    answered = [0]

    async def converse(line: Line) -> None:
        line.say(silence(0.3, 16_000))
        while not stop.is_set():
            await ask(line, question)
            answered[0] += 1

    tasks = [asyncio.create_task(converse(line)) for line, _ in lines]
    await asyncio.sleep(5)  # every session is up and talking
    cpu0, wall0, turns0 = time.process_time(), time.monotonic(), answered[0]
    await asyncio.sleep(window)
    used, wall = time.process_time() - cpu0, time.monotonic() - wall0
    turns = answered[0] - turns0
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for line, _ in lines:
        await line.close()
    per_session = used / wall / sessions
    return {
        "sessions": sessions,
        "turns_in_window": turns,
        "cpu_cores_used": round(used / wall, 3),
        "cpu_per_session": round(per_session, 3),
        "sessions_per_core": round(1 / per_session, 1) if per_session else None,
    }


async def main(turns: int, sessions: list[int], window: float) -> dict:
    models.prewarm()
    question = await synthesize(QUESTION, 16_000)
    async with (
        scratch_database("syntera_bench_voice") as url,
        hub_client(
            url, voice_sessions_per_company=100, voice_sessions_per_process=100, demo=False
        ) as hub,
    ):
        company_id, agent, headers, key_headers = await setup(hub)
        result = {"cpu_count": os.cpu_count()}
        result["latency"] = await latency(hub, agent, headers, key_headers, question, turns)
        reply = result["latency"]["reply"] or ""
        base = await compute_baseline(hub, company_id, agent, question, reply)
        result["compute_baseline_p50_ms"] = base
        measured = result["latency"]["agent_measured_p50_ms"]
        before = (measured["transcript_ms"] or 0) - VAD_SILENCE * 1000 - base["stt_ms"]
        after = (
            (measured["total_ms"] or 0)
            - (measured["end_of_turn_ms"] or 0)
            - base["retrieval_ms"]
            - base["llm_first_token_ms"]
            - base["tts_first_audio_ms"]
        )
        result["runtime_overhead_p50_ms"] = {
            "until_transcript": round(before, 1),
            "turn_to_first_audio": round(after, 1),
            "total": round(before + after, 1),
            "endpointing_wait": round(
                (measured["end_of_turn_ms"] or 0) - (measured["transcript_ms"] or 0), 1
            ),
        }
        result["cpu"] = [await cpu(hub, agent, key_headers, question, n, window) for n in sessions]
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--sessions", default="1,2,4")
    parser.add_argument("--window", type=float, default=30.0)
    args = parser.parse_args()
    sessions = [int(n) for n in args.sessions.split(",")]
    print(json.dumps(asyncio.run(main(args.turns, sessions, args.window)), indent=2))
