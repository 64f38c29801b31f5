"""Soak: a long run at half the cluster's knee, with visitors coming and going.

    python -m bench.soak [--minutes 30] [--window 5] [--rate R]

Starts bench.cluster (2 web, 2 worker, PostgreSQL, Redis, the streaming
model). First it finds the knee: visitors arrive at a rising rate of offered
turns per second, a short step each, and the knee is the highest rate
before the first token starts queueing (its p50 within twice the lightest
step's, no errors). Then, for `--minutes`, visitors arrive at half that rate
(`--rate` skips the search): each starts a conversation, connects its widget
socket, asks 1–3 questions and leaves, so connections churn all along. Staff
stay connected on every web process.

Reported per window: turns, first-token p50/p99 and errors. For every
process, its memory (PSS: pages shared between processes counted once)
sampled every 15 s, and its slope by least squares over the samples after
the first window, in MB per hour (goal ≤ 5). At the end, the ledger: every
acknowledged message stored once and answered once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.cluster import Cluster, children_of
from bench.common import percentile
from bench.load import QUESTIONS, Dashboard, Staff, Stats, Visitor, ledger, set_up_company
from bench.report import emit, number, table

SAMPLE_SECONDS = 15


def memory_mb(pids: list[int]) -> float:
    """Proportional set size of live processes (Linux /proc), MB: pages shared
    between them (PostgreSQL's shared buffers, in every backend) count once."""
    total_kb = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, StopIteration):
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
            total_kb += int(next(line for line in rollup if line.startswith("Pss:")).split()[1])
    return total_kb / 1024


def processes(cluster: Cluster) -> dict[str, list[int]]:
    """Every process of the cluster by name (PostgreSQL: the postmaster and its
    backends; a web process with the helpers it started, such as recognisers)."""
    found = {}
    for process in [*cluster.web, *cluster.worker]:
        pid = process.proc.pid
        found[process.name] = [pid, *children_of(pid)]
    found["postgres"] = cluster.postgres.pids()
    found["redis"] = [cluster.redis.proc.pid]
    return found


def slope_mb_per_hour(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) samples, in MB per hour."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_m = sum(m for _, m in samples) / n
    spread = sum((t - mean_t) ** 2 for t, _ in samples)
    if spread == 0:
        return 0.0
    return sum((t - mean_t) * (m - mean_m) for t, m in samples) / spread * 3600


class Arrivals:
    """Visitors arriving at random (Poisson) at a given rate of offered turns."""

    def __init__(self, cluster: Cluster, staff: Staff, http: aiohttp.ClientSession) -> None:
        self.cluster, self.staff, self.http = cluster, staff, http
        self.count = 0
        self.running: set[asyncio.Task] = set()
        self.acked: dict[str, str] = {}

    async def visit(self, stats: Stats) -> None:
        visitor = Visitor(self.cluster.web_urls, self.count, self.staff, stats)
        self.count += 1
        try:
            await visitor.start(self.http)
            for n in range(random.randint(1, 3)):
                await visitor.turn(random.choice(QUESTIONS) + f" ({n})")
                await asyncio.sleep(random.uniform(0.5, 1.5))
        except Exception as error:  # counted, and the run goes on
            stats.errors[f"visitor:{type(error).__name__}"] += 1
        finally:
            await visitor.close()
            self.acked.update(stats.acked)

    async def offer(self, turns_per_s: float, seconds: float, stats: Stats) -> None:
        """Start visitors for `seconds`; each asks 2 questions on average."""
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            task = asyncio.create_task(self.visit(stats))
            self.running.add(task)
            task.add_done_callback(self.running.discard)
            await asyncio.sleep(random.expovariate(turns_per_s / 2))

    async def drain(self) -> None:
        while self.running:
            await asyncio.gather(*self.running, return_exceptions=True)


def first_token(stats: Stats) -> tuple[float, float]:
    samples = stats.samples["ws:first_token"] or [0.0]
    return percentile(samples, 50), percentile(samples, 99)


async def find_knee(arrivals: Arrivals, steps: list[float], seconds: float) -> tuple[float, list]:
    """The highest offered rate before the first token starts queueing: its
    p50 within twice the lightest step's, and no errors. (Served turns/s are
    shown too; they include each step's tail, when its last visitors finish.)"""
    rows, knee, lightest = [], steps[0], None
    for rate in steps:
        stats = Stats()
        started = time.perf_counter()
        await arrivals.offer(rate, seconds, stats)
        await arrivals.drain()
        served = stats.turns_done / (time.perf_counter() - started)
        p50, p99 = first_token(stats)
        lightest = lightest or p50
        ok = p50 <= 2 * lightest and not stats.errors
        rows.append((rate, round(served, 1), round(p50), round(p99), dict(stats.errors), ok))
        if not ok:
            break
        knee = rate
    return knee, rows


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    async with Cluster() as cluster, aiohttp.ClientSession() as http:
        staff = await set_up_company(http, cluster.web_urls[0])
        dashboards = [Dashboard(url, staff, http) for url in cluster.web_urls]
        for dashboard in dashboards:
            await dashboard.connect()
        arrivals = Arrivals(cluster, staff, http)
        knee_rows: list = []
        if args.rate:
            rate = args.rate
        else:
            knee, knee_rows = await find_knee(arrivals, args.steps, args.step_seconds)
            rate = knee / 2
        memory: dict[str, list[tuple[float, float]]] = {}
        began = time.perf_counter()

        async def sample() -> None:
            while True:
                now = time.perf_counter() - began
                for name, pids in processes(cluster).items():
                    memory.setdefault(name, []).append((now, memory_mb(pids)))
                await asyncio.sleep(SAMPLE_SECONDS)

        sampler = asyncio.create_task(sample())
        windows = []
        for index in range(max(1, round(args.minutes / args.window))):
            stats = Stats()
            await arrivals.offer(rate, args.window * 60, stats)
            windows.append(stats)
            p50, p99 = first_token(stats)
            print(f"window {index + 1}: {stats.turns_done} turns, first token p50 {p50:.0f}"
                  f" p99 {p99:.0f} ms, errors {dict(stats.errors)}", flush=True)  # fmt: skip
        await arrivals.drain()
        sampler.cancel()
        await asyncio.sleep(1.0)  # the last events reach the dashboards
        merged = Stats()
        merged.acked = arrivals.acked
        books = await ledger(cluster, merged, dashboards)
        for dashboard in dashboards:
            await dashboard.close()
    warm = args.window * 60
    return {
        "knee_steps": knee_rows,
        "rate": rate,
        "windows": [
            {
                "turns": s.turns_done,
                "first_token_p50_ms": round(first_token(s)[0]),
                "first_token_p99_ms": round(first_token(s)[1]),
                "errors": dict(s.errors),
            }
            for s in windows
        ],
        "memory": {
            name: {
                "start_mb": round(samples[0][1]),
                "end_mb": round(samples[-1][1]),
                "slope_mb_per_hour": round(
                    slope_mb_per_hour([s for s in samples if s[0] >= warm] or samples), 1
                ),
            }
            for name, samples in memory.items()
        },
        "visitors": arrivals.count,
        "ledger": books,
    }


def print_report(figures: dict[str, Any]) -> None:
    if figures["knee_steps"]:
        emit(
            "soak-knee",
            table(
                ["offered turns/s", "served turns/s", "first token p50", "p99", "errors", "kept"],
                [
                    (rate, served, f"{p50} ms", f"{p99} ms", errors or 0, "yes" if ok else "no")
                    for rate, served, p50, p99, errors, ok in figures["knee_steps"]
                ],
            ),
        )
    emit(
        "soak-windows",
        table(
            ["window", "turns", "first token p50", "first token p99", "errors"],
            [
                (
                    i + 1,
                    w["turns"],
                    f"{w['first_token_p50_ms']} ms",
                    f"{w['first_token_p99_ms']} ms",
                    w["errors"] or 0,
                )  # fmt: skip
                for i, w in enumerate(figures["windows"])
            ],
        ),
    )
    emit(
        "soak-memory",
        table(
            ["process", "memory (PSS) at start", "at end", "slope after the first window"],
            [
                (
                    name,
                    f"{number(m['start_mb'])} MB",
                    f"{number(m['end_mb'])} MB",
                    f"{m['slope_mb_per_hour']} MB/h",
                )  # fmt: skip
                for name, m in figures["memory"].items()
            ],
        ),
    )
    print(f"offered {figures['rate']} turns/s; {figures['visitors']} visitors")
    print(f"ledger: {figures['ledger']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--window", type=float, default=5, help="minutes per reported window")
    parser.add_argument("--rate", type=float, help="offered turns/s (default: half the knee)")
    parser.add_argument("--steps", type=float, nargs="+", default=[4, 8, 12, 16, 24, 32, 48, 64])
    parser.add_argument("--step-seconds", type=float, default=20)
    figures = asyncio.run(soak(parser.parse_args()))
    print_report(figures)
    print(json.dumps(figures))
