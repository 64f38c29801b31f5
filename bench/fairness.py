"""Fairness between companies: a quiet company's first token while another
company's backlog is deeper than the workers' slots.

    python -m bench.fairness [--flood 300] [--quiet 4] [--turns 3] [--concurrency 8]
                             [--per-company 4]

On bench.cluster (2 web, 2 worker, PostgreSQL, Redis, a model streaming a
30-word answer at 50 words/s), with JOB_CONCURRENCY lowered (8 per worker)
so that the backlog is many times the slots, and JOB_CONCURRENCY_PER_COMPANY
half of it as shipped (64 and 32); `--per-company 8` lets one company take
every slot, so that the quiet company's job waits for one to free:

1. alone: the quiet company's visitors (`--quiet`) each chat `--turns`
   turns, one at a time, with nothing else running;
2. under the flood: the noisy company opens `--flood` conversations at once
   and sends a message in each, all at once; as soon as they are
   acknowledged the quiet company's visitors chat the same turns again.

Reported, in markdown: the quiet company's first streamed token (from
`message:send` to the first `message:delta`) p50 and p99 alone and under
the flood, and their ratio (goal: at most 3x), and how long the flood took
to drain. `--source DIR` runs the processes from another checkout (an older
commit, to compare). The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench import load
from bench.cluster import ROOT, Cluster
from bench.common import percentile
from bench.report import emit, table


async def chat(visitors: list[load.Visitor], turns: int) -> None:
    async def one(visitor: load.Visitor) -> None:
        for n in range(turns):
            await visitor.turn(random.choice(load.QUESTIONS) + f" ({n})")
            await asyncio.sleep(random.uniform(0.2, 0.5))

    await asyncio.gather(*(one(v) for v in visitors))


async def run(cluster: Cluster, *, flood: int, quiet: int, turns: int) -> dict[str, Any]:
    urls = cluster.web_urls
    alone, flooded, noisy_stats = load.Stats(), load.Stats(), load.Stats()
    async with aiohttp.ClientSession() as http:
        quiet_staff = await load.set_up_company(http, urls[0])
        noisy_staff = await load.set_up_company(http, urls[0])
        visitors = [load.Visitor(urls, i, quiet_staff, alone) for i in range(quiet)]
        for visitor in visitors:
            await visitor.start(http)
        await chat(visitors, turns)

        noisy = [load.Visitor(urls, i, noisy_staff, noisy_stats) for i in range(flood)]
        for batch in range(0, flood, 50):  # connecting is not what is measured
            await asyncio.gather(*(v.start(http) for v in noisy[batch : batch + 50]))
        for visitor in visitors:
            visitor.stats = flooded
        started = time.perf_counter()
        # Every noisy conversation's message at once; each waits for its reply.
        backlog = [asyncio.create_task(v.turn("Where is my order?", 300)) for v in noisy]
        while len(noisy_stats.acked) < flood:  # noqa: ASYNC110 (acks come over the sockets)
            await asyncio.sleep(0.02)
        await chat(visitors, turns)
        quiet_done = time.perf_counter() - started
        flood_left = flood - noisy_stats.turns_done  # still to answer when the quiet were done
        await asyncio.gather(*backlog)
        drained = time.perf_counter() - started
        for visitor in [*visitors, *noisy]:
            await visitor.close()

    def first_token(stats: load.Stats) -> dict[str, float]:
        values = stats.samples["ws:first_token"]
        return {
            "count": len(values),
            "p50_ms": round(percentile(values, 50), 1),
            "p99_ms": round(percentile(values, 99), 1),
        }

    a, f = first_token(alone), first_token(flooded)
    return {
        "flood": flood,
        "quiet_visitors": quiet,
        "alone": a,
        "under_flood": f,
        "ratio_p50": round(f["p50_ms"] / a["p50_ms"], 2),
        "ratio_p99": round(f["p99_ms"] / a["p99_ms"], 2),
        "quiet_done_s": round(quiet_done, 1),
        "flood_left_when_quiet_done": flood_left,
        "flood_drained_s": round(drained, 1),
        "flood_turns": noisy_stats.turns_done,
        "errors": {**alone.errors, **flooded.errors, **noisy_stats.errors},
    }


def print_report(result: dict[str, Any], concurrency: int, per_company: int) -> None:
    a, f = result["alone"], result["under_flood"]
    print(
        f"Quiet company's first token, {result['quiet_visitors']} visitors; the other company"
        f" opens {result['flood']} conversations at once (JOB_CONCURRENCY={concurrency},"
        f" JOB_CONCURRENCY_PER_COMPANY={per_company}, 2 workers)"
    )
    emit(
        "fairness",
        f"The other company opens {result['flood']} conversations at once;"
        f" JOB_CONCURRENCY {concurrency}, JOB_CONCURRENCY_PER_COMPANY {per_company},"
        " 2 workers.\n\n"
        + table(
            ["quiet company", "turns", "first token p50", "p99"],
            [
                ("alone", a["count"], f"{a['p50_ms']} ms", f"{a['p99_ms']} ms"),
                ("under the flood", f["count"], f"{f['p50_ms']} ms", f"{f['p99_ms']} ms"),
                ("**ratio**", "", f"**{result['ratio_p50']}×**", f"{result['ratio_p99']}×"),
            ],
        )
        + f"\nThe quiet company was done {result['quiet_done_s']} s into the flood, with"
        f" {result['flood_left_when_quiet_done']} of the flood's turns still to answer; the"
        f" flood's {result['flood_turns']} turns drained in {result['flood_drained_s']} s."
        f" Errors: {result['errors'] or 'none'}.\n",
    )


async def main(args: argparse.Namespace) -> dict[str, Any]:
    env = {
        "JOB_CONCURRENCY": str(args.concurrency),
        "JOB_CONCURRENCY_PER_COMPANY": str(args.per_company),
    }
    async with Cluster(extra_env=env, source=args.source) as cluster:
        result = await run(cluster, flood=args.flood, quiet=args.quiet, turns=args.turns)
    print_report(result, args.concurrency, args.per_company)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--flood", type=int, default=300)
    parser.add_argument("--quiet", type=int, default=4)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--per-company", type=int, default=4)
    parser.add_argument("--source", type=Path, default=ROOT)
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
