"""Faults on a local cluster, each automated and bounded in time.

    python -m bench.faults [--only kill_web,restart_redis,...]

On bench.cluster (2 web, 2 worker, private PostgreSQL and Redis, a streaming
model), visitors chat while a piece is made to fail:

- kill_web: a web process is SIGKILLed mid-conversation; its visitors
  reconnect to the other one and resume with no gap in `seq`;
- kill_worker: a worker is SIGKILLed while it streams replies; every message
  still gets exactly one reply (another worker takes the job over). It
  prints, in markdown, the time from the SIGKILL to the first delta of the
  attempt that took each of its turns over, and to the whole reply reaching
  the visitor (the reply streams about 4 s by itself here);
- restart_redis: Redis goes away for a few seconds and comes back empty; the
  hub recovers by itself, no acknowledged message is lost or left unanswered,
  the dashboards catch up on what they missed (`sync`), and the failed
  publishes show in /metrics;
- restart_postgres: PostgreSQL is stopped; requests fail fast with 503 while
  it is down and succeed once it is back;
- model_down, model_slow: the model endpoint answers 500s, or answers late;
  visitors get a clear notice or the late reply, and typing never stays on.

Each fault ends with the ledger of bench.load: every acknowledged message
stored exactly once and answered exactly once. The last line is one JSON
object with every result.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from bench import load
from bench.cluster import Cluster
from bench.common import percentile
from bench.report import emit, table
from fakes.openai import Reply

VISIT = {"messages": 3, "rest_rps": 5, "think": (0.3, 1.0)}


def ledger_ok(result: dict[str, Any]) -> bool:
    books = result["ledger"]
    counts = ("lost", "duplicated", "unanswered", "undelivered_to_dashboard")
    return all(books[count] == 0 for count in counts)


async def metric(url: str, name: str) -> float:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as response:
        text = await response.text()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


async def kill_web(cluster: Cluster, sessions: int) -> dict[str, Any]:
    victim = cluster.web[0]

    async def fault(visitors):
        await asyncio.sleep(3)  # visitors are mid-conversation
        await victim.kill()
        await asyncio.sleep(2)
        await cluster.restart(victim)

    result = await load.run(
        cluster, sessions=sessions, duration=40, during=fault, watch=[1], **VISIT
    )
    result["ok"] = ledger_ok(result) and result["seq_gaps"] == 0 and result["reconnects"] > 0
    return result


def takeovers(visitors: list[load.Visitor], killed: float, before: dict) -> dict[str, Any]:
    """The turns the killed worker was streaming: those whose visitor saw a
    stream begin before the kill and another attempt begin after it, before
    the reply. From the SIGKILL to the new attempt's first delta, and to the
    whole reply reaching the visitor."""
    restarted, replied = [], []
    for visitor in visitors:
        waiting, seen = before.get(id(visitor), (None, set()))
        if waiting is None or not seen:
            continue
        reply = visitor.replied_at.get(waiting)
        new = [t for k, t in visitor.streams.items() if k not in seen and t > killed]
        if reply is None or not new or min(new) > reply:
            continue
        restarted.append((min(new) - killed) * 1000)
        replied.append((reply - killed) * 1000)

    def summary(values: list[float]) -> dict[str, float | None]:
        if not values:
            return {"p50_ms": None, "max_ms": None}
        return {"p50_ms": round(percentile(values, 50)), "max_ms": round(max(values))}

    return {"turns": len(restarted), "to_restart": summary(restarted), "to_reply": summary(replied)}


async def kill_worker(cluster: Cluster, sessions: int) -> dict[str, Any]:
    victim = cluster.worker[0]
    cluster.model.default = Reply(text=cluster.answer, chunk_delay=0.15)  # replies take seconds
    kill: dict[str, Any] = {}

    async def fault(visitors):
        # Half the visitors' turns streaming, so that both workers have some.
        requests = len(cluster.model.requests)
        while len(cluster.model.requests) < requests + max(2, sessions // 2):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        # What each visitor awaited and the streams it had seen, as the worker dies.
        kill["before"] = {
            id(v): (
                v.waiting_for if v.waiting_for not in v.replied_at else None,
                set(v.streams),
            )
            for v in visitors
        }
        kill["at"] = time.perf_counter()
        kill["visitors"] = visitors
        await victim.kill()
        await asyncio.sleep(cluster.job_lease_seconds + 2)
        await cluster.restart(victim)

    try:
        result = await load.run(
            cluster, sessions=sessions, duration=60, during=fault, messages=2, rest_rps=2,
            think=(0.2, 0.5),
        )  # fmt: skip
    finally:
        cluster.model.default = Reply(text=cluster.answer, chunk_delay=cluster.token_delay)
    result["takeover"] = takeovers(kill["visitors"], kill["at"], kill["before"])
    result["ok"] = ledger_ok(result)
    return result


async def restart_redis(cluster: Cluster, sessions: int) -> dict[str, Any]:
    urls = cluster.web_urls

    async def failures() -> float:
        return sum(
            [await metric(url, "event_publish_failures_total") for url in urls]
            + [await metric(url, "job_enqueue_failures_total") for url in urls]
        )

    before = await failures()

    async def fault(visitors):
        await asyncio.sleep(3)
        await cluster.redis.stop()
        await asyncio.sleep(4)
        await cluster.redis.start()  # empty: the streams and their groups are gone

    result = await load.run(cluster, sessions=sessions, duration=60, during=fault, **VISIT)
    result["publish_failures_in_metrics"] = await failures() - before
    # Recovered by itself: new visitors chat as before, their replies live.
    after = await load.run(cluster, sessions=2, messages=1, duration=30, rest_rps=2)
    result["after_recovery"] = after["ledger"]
    # Live events published while Redis was down are lost (the messages are not):
    # each web process tells its dashboards to catch up (`sync`) once it has
    # Redis back, so every acknowledged message still reaches every dashboard.
    result["ok"] = (
        ledger_ok(result)
        and result["dashboard_catch_ups"] > 0
        and result["publish_failures_in_metrics"] > 0
        and ledger_ok(after)
    )
    return result


async def restart_postgres(cluster: Cluster, sessions: int) -> dict[str, Any]:
    probes: list[tuple[float, int, float]] = []  # (when, status, ms)

    async def probe(http: aiohttp.ClientSession, staff_headers: dict, url: str) -> None:
        started = time.perf_counter()
        try:
            async with http.get(f"{url}/api/conversations?limit=5", headers=staff_headers) as r:
                status = r.status
        except (aiohttp.ClientError, OSError):
            status = 0
        probes.append((time.monotonic(), status, (time.perf_counter() - started) * 1000))

    outage: dict[str, float] = {}

    async def fault(visitors):
        await asyncio.sleep(3)
        staff = visitors[0].staff
        async with aiohttp.ClientSession() as http:
            outage["down"] = time.monotonic()
            await cluster.postgres.stop()
            while time.monotonic() - outage["down"] < 4:
                await asyncio.gather(*(probe(http, staff.headers, u) for u in cluster.web_urls))
                await asyncio.sleep(0.2)
            await cluster.postgres.start()
            outage["up"] = time.monotonic()
            while True:
                await probe(http, staff.headers, cluster.web_urls[0])
                if probes[-1][1] == 200:
                    outage["recovered"] = time.monotonic()
                    return
                if time.monotonic() - outage["up"] > 60:
                    return
                await asyncio.sleep(0.2)

    result = await load.run(cluster, sessions=sessions, duration=60, during=fault, **VISIT)
    during = [p for p in probes if p[0] < outage.get("up", 0)]
    result["down_statuses"] = sorted({status for _, status, _ in during})
    result["down_p99_ms"] = round(percentile([ms for *_, ms in during], 99), 1) if during else None
    result["recovered_after_s"] = (
        round(outage["recovered"] - outage["up"], 2) if "recovered" in outage else None
    )
    result["ok"] = (
        ledger_ok(result)
        and result["down_statuses"] == [503]
        and result["down_p99_ms"] is not None
        and result["down_p99_ms"] < 1000
        and result["recovered_after_s"] is not None
    )
    return result


async def model_down(cluster: Cluster, sessions: int) -> dict[str, Any]:
    cluster.model.default = Reply(status=500)
    try:
        result = await load.run(
            cluster, sessions=sessions, duration=40, messages=1, rest_rps=2, think=(0.2, 0.5)
        )
    finally:
        cluster.model.default = Reply(text=cluster.answer, chunk_delay=cluster.token_delay)
    # Every message is answered — by the failure notice — and typing ends.
    result["ok"] = ledger_ok(result) and result["typing_left_on"] == 0 and result["notices"] > 0
    return result


async def model_slow(cluster: Cluster, sessions: int) -> dict[str, Any]:
    cluster.model.default = Reply(text=cluster.answer, delay=3.0, chunk_delay=cluster.token_delay)
    try:
        result = await load.run(
            cluster, sessions=sessions, duration=40, messages=1, rest_rps=2, think=(0.2, 0.5)
        )
    finally:
        cluster.model.default = Reply(text=cluster.answer, chunk_delay=cluster.token_delay)
    result["ok"] = ledger_ok(result) and result["typing_left_on"] == 0 and result["notices"] == 0
    return result


FAULTS: dict[str, Callable[[Cluster, int], Awaitable[dict[str, Any]]]] = {
    "kill_web": kill_web,
    "kill_worker": kill_worker,
    "restart_redis": restart_redis,
    "restart_postgres": restart_postgres,
    "model_down": model_down,
    "model_slow": model_slow,
}


async def run_faults(names: list[str], sessions: int) -> dict[str, Any]:
    results = {}
    # The lease as shipped (JOB_LEASE_SECONDS): kill_worker measures the takeover.
    async with Cluster(turn_recovery_seconds=2) as cluster:
        for name in names:
            results[name] = await FAULTS[name](cluster, sessions)
    return results


# What some faults report beyond the ledger.
EXTRA = (
    "dashboard_catch_ups",
    "publish_failures_in_metrics",
    "after_recovery",
    "down_statuses",
    "down_p99_ms",
    "recovered_after_s",
    "notices",
    "typing_left_on",
    "takeover",
)


def shown(value: Any) -> str:
    """A figure for the table; a ledger as its counts that are not zero."""
    if isinstance(value, dict) and "acknowledged" in value:
        counts = [(k.replace("_", " "), v) for k, v in value.items() if isinstance(v, int) and v]
        return "(" + ", ".join(f"{name} {v}" for name, v in counts) + ")"
    return str(value)


def print_results(results: dict[str, Any]) -> None:
    rows = []
    for name, result in results.items():
        books = result["ledger"]
        extra = {k: result[k] for k in EXTRA if k in result and k != "takeover"}
        rows.append(
            (f"`{name}`", "passed" if result["ok"] else "**FAILED**", books["acknowledged"],
             books["lost"], books["duplicated"], books["unanswered"], result["seq_gaps"],
             result["reconnects"],
             ", ".join(f"{k.replace('_', ' ')} {shown(v)}" for k, v in extra.items()) or "")
        )  # fmt: skip
    emit(
        "faults",
        table(
            [
                "fault",
                "result",
                "acknowledged",
                "lost",
                "duplicated",
                "unanswered",
                "seq gaps",
                "reconnects",
                "also",
            ],
            rows,
        ),  # fmt: skip
    )
    if "kill_worker" in results:
        print_takeover(results["kill_worker"])


def print_takeover(result: dict[str, Any]) -> None:
    """kill_worker's recovery: from the SIGKILL to the visitor."""
    takeover = result["takeover"]
    rows = (("the new attempt's first delta", "to_restart"), ("the whole reply", "to_reply"))
    emit(
        "faults-takeover",
        f"{takeover['turns']} turns taken over from the killed worker.\n\n"
        + table(
            ["from the SIGKILL to", "p50", "max"],
            [
                (name, f"{takeover[key]['p50_ms']} ms", f"{takeover[key]['max_ms']} ms")
                for name, key in rows
            ],
        ),
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default=",".join(FAULTS))
    parser.add_argument("--sessions", type=int, default=20)
    args = parser.parse_args()
    outcome = asyncio.run(run_faults(args.only.split(","), args.sessions))
    print_results(outcome)
    print(json.dumps(outcome))
