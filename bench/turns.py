"""Agent turns per second and the runtime's own overhead per turn.

    python -m bench.turns [--turns 300] [--conversations 30]

The model is fakes/openai.py's OpenAI-compatible server answering at once, reached through
the real `openai` client, so what is measured is the hub: storing the user
message, queueing, retrieval, prompt, streaming deltas onto the event bus,
storing the reply, events. Baseline: a bare loop that only calls the same fake
model through the same client. Three setups:

- sequential: one conversation, one turn at a time (latency per turn);
- in-process: the embedded mode's queue, many conversations at once;
- redis: the scaled mode — this process enqueues on Redis Streams and two
  `python -m agents_runtime` worker processes answer: many conversations at
  once (throughput), then one turn at a time (latency per turn, the reply
  heard on the Redis event bus as a web process would hear it).

Prints a table, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import time
import uuid
from pathlib import Path

from agents_runtime import runtime
from agents_runtime.llm import ChatRequest, OpenAIChat
from bench.common import scratch_database
from bench.report import emit, table
from fakes.openai import FakeOpenAI, Reply
from fakes.serve import served
from hub.config import Settings
from hub.conversations import post_user_message
from hub.events import company_topic
from hub.services import close_services, open_services
from hub.store import companies, conversations

REDIS_URL = (
    os.environ.get("BENCH_REDIS_URL")
    or os.environ.get("TEST_REDIS_URL")
    or "redis://127.0.0.1:6379/0"
)
ROOT = Path(__file__).resolve().parent.parent
ANSWER = (
    "Refunds are issued within fourteen days of the return reaching us, to the original card [1]."
)


async def bare_model(fake: FakeOpenAI, n: int) -> float:
    """Milliseconds per call to the fake model, nothing else."""
    llm = OpenAIChat("sk-bench", fake.base_url)
    request = ChatRequest(
        model="gpt-bench",
        messages=[{"role": "user", "content": "refunds?"}],
        temperature=0,
        max_tokens=200,
    )
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        async for _item in llm.stream(request):
            pass
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


async def company_with_conversations(services, count: int):
    async with services.db.system() as conn:
        company = await companies.create(conn, f"Bench {uuid.uuid4().hex[:6]}")
    company_id = company["id"]
    async with services.db.tenant(company_id) as conn:
        agent_id = await conn.fetchval(
            "INSERT INTO agents (company_id, name, model, temperature, max_tokens)"
            " VALUES ($1, 'Bench', 'gpt-bench', 0, 200) RETURNING id",
            company_id,
        )
        ids = [
            (await conversations.create(conn, company_id=company_id, agent_id=agent_id))["id"]
            for _ in range(count)
        ]
    return company_id, ids


async def replies(services, company_id) -> int:
    async with services.db.tenant(company_id) as conn:
        return await conn.fetchval("SELECT count(*) FROM messages WHERE sender_type = 'agent'")


async def wait_for_replies(services, company_id, expected: int, within: float = 300) -> None:
    deadline = time.monotonic() + within
    while await replies(services, company_id) < expected:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {await replies(services, company_id)} of {expected} replies")
        await asyncio.sleep(0.02)


async def post(services, company_id, conversation_id, text: str) -> None:
    async with services.db.tenant(company_id) as conn:
        await post_user_message(
            services, conn, company_id=company_id, conversation_id=conversation_id, content=text
        )


async def sequential(settings: Settings, n: int) -> float:
    """Milliseconds per turn, one at a time, from storing the question to the stored reply."""
    services = await open_services(settings, runtime.parts)
    runtime.install(services)
    await services.jobs.start()
    try:
        company_id, [conversation_id] = await company_with_conversations(services, 1)
        samples = []
        for i in range(n):
            start = time.perf_counter()
            await post(services, company_id, conversation_id, f"question {i}")
            await services.jobs.join()
            samples.append((time.perf_counter() - start) * 1000)
        return statistics.median(samples)
    finally:
        await close_services(services)


async def in_process(settings: Settings, turns: int, conversation_count: int) -> float:
    services = await open_services(settings, runtime.parts)
    runtime.install(services)
    await services.jobs.start()
    try:
        company_id, ids = await company_with_conversations(services, conversation_count)
        start = time.perf_counter()
        for i in range(turns):
            await post(services, company_id, ids[i % len(ids)], f"question {i}")
        await wait_for_replies(services, company_id, turns)
        return turns / (time.perf_counter() - start)
    finally:
        await close_services(services)


async def one_at_a_time_over_redis(services, company_id, conversation_id, n: int) -> float:
    """Milliseconds per turn over Redis, one at a time: from storing the
    question to hearing (on the Redis event bus) that its reply was stored."""
    stored: asyncio.Queue[float] = asyncio.Queue()

    async def heard(event) -> None:
        data = event.data
        if (
            event.type == "message.created"
            and data["sender_type"] == "agent"
            and str(data["conversation_id"]) == str(conversation_id)
        ):
            stored.put_nowait(time.perf_counter())

    services.events.subscribe(heard)
    # Over Redis a process hears a company's events only once it follows them,
    # as a web process does for the dashboards connected to it.
    await services.events.follow(company_topic(company_id))
    samples = []
    for i in range(n):
        start = time.perf_counter()
        await post(services, company_id, conversation_id, f"one at a time {i}")
        samples.append((await asyncio.wait_for(stored.get(), 30) - start) * 1000)
    return statistics.median(samples)


async def over_redis(
    settings: Settings, turns: int, conversation_count: int
) -> tuple[float, float]:
    """Turns per second with many conversations at once, then milliseconds
    per turn one at a time, both answered by two worker processes."""
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "REDIS_PREFIX": settings.redis_prefix,
        "JWT_SECRET": settings.jwt_secret,
        "OPENAI_API_KEY": "sk-bench",
        "OPENAI_BASE_URL": settings.openai_base_url,
        "LOG_LEVEL": "WARNING",
    }
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agents_runtime", cwd=ROOT, env=env
        )
        for _ in range(2)
    ]
    # This process only enqueues, as `web` does
    services = await open_services(settings, runtime.parts)
    try:
        company_id, ids = await company_with_conversations(services, conversation_count)
        # Warm up: both workers connected and answering.
        await post(services, company_id, ids[0], "warm up")
        await wait_for_replies(services, company_id, 1, within=60)
        start = time.perf_counter()
        for i in range(turns):
            await post(services, company_id, ids[i % len(ids)], f"question {i}")
        await wait_for_replies(services, company_id, turns + 1)
        tps = turns / (time.perf_counter() - start)
        return tps, await one_at_a_time_over_redis(services, company_id, ids[-1], 100)
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            await asyncio.wait_for(worker.wait(), 30)
        await close_services(services)


def print_report(figures: dict, conversation_count: int) -> None:
    def against_bare(p50: str, ratio: str) -> str:
        return f"{figures[p50]} ms ({figures[ratio]}× the bare call)"

    emit(
        "turns",
        table(
            ["figure", "value"],
            [
                ("bare model call (baseline), p50", f"{figures['bare_model_p50_ms']} ms"),
                (
                    "in-process: one turn end to end, p50 (message stored → reply stored)",
                    against_bare("turn_p50_ms", "ratio_turn_to_bare_model"),
                ),
                (
                    "in-process: runtime overhead per turn (turn − bare call)",
                    f"{figures['overhead_per_turn_ms']} ms",
                ),
                (
                    "Redis Streams, 2 `python -m agents_runtime` workers: one turn end to end,"
                    " p50 (message stored → reply heard on the event bus)",
                    against_bare("redis_turn_p50_ms", "ratio_redis_turn_to_bare_model"),
                ),
                (
                    "Redis Streams, 2 workers: runtime overhead per turn",
                    f"{figures['redis_overhead_per_turn_ms']} ms",
                ),
                (
                    f"in-process queue, {conversation_count} conversations at once",
                    f"{figures['in_process_turns_per_s']} turns/s",
                ),
                (
                    f"Redis Streams, 2 workers, {conversation_count} conversations at once",
                    f"{figures['redis_2_workers_turns_per_s']} turns/s",
                ),
                ("bare model loop (baseline)", f"{figures['bare_model_calls_per_s']} calls/s"),
            ],
        ),
    )


async def main(turns: int, conversation_count: int) -> dict:
    fake = FakeOpenAI()
    fake.default = Reply(text=ANSWER, prompt_tokens=400, completion_tokens=25)
    async with served(fake), scratch_database() as url:
        settings = Settings(
            database_url=url,
            jwt_secret=secrets.token_urlsafe(48),
            data_dir=Path("/tmp/syntera-bench"),
            openai_api_key="sk-bench",
            openai_base_url=fake.base_url,
            log_level="WARNING",
        )
        model_ms = await bare_model(fake, 100)
        turn_ms = await sequential(settings, 100)
        local_tps = await in_process(settings, turns, conversation_count)
        redis_settings = settings.with_overrides(
            redis_url=REDIS_URL, redis_prefix=f"bench-{uuid.uuid4().hex[:8]}"
        )
        redis_tps, redis_turn_ms = await over_redis(redis_settings, turns, conversation_count)
    figures = {
        "bare_model_p50_ms": round(model_ms, 2),
        "turn_p50_ms": round(turn_ms, 2),
        "overhead_per_turn_ms": round(turn_ms - model_ms, 2),
        "ratio_turn_to_bare_model": round(turn_ms / model_ms, 2),
        "redis_turn_p50_ms": round(redis_turn_ms, 2),
        "redis_overhead_per_turn_ms": round(redis_turn_ms - model_ms, 2),
        "ratio_redis_turn_to_bare_model": round(redis_turn_ms / model_ms, 2),
        "in_process_turns_per_s": round(local_tps, 1),
        "redis_2_workers_turns_per_s": round(redis_tps, 1),
        "bare_model_calls_per_s": round(1000 / model_ms, 1),
    }
    print_report(figures, conversation_count)
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--conversations", type=int, default=30)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.turns, args.conversations))))
