"""REST throughput of one `web` process, next to two bare aiohttp servers.

    python -m bench.rest [--seconds 15] [--rounds 3] [--concurrency 32] [--before DIR]

Starts `python -m hub serve` on a scratch database (with REDIS_URL, as when
scaled out) and two baselines, each a bare aiohttp process: one answers a
constant JSON body; the other reads the same agent row by id from the same
PostgreSQL through its own small asyncpg pool and returns it as JSON (what a
hand-written one-row endpoint costs). The same client — N concurrent
keep-alive connections from this process — drives each for the same time in
one run, in `--rounds` turns taken round-robin, so that a load swing on a
shared machine falls on every target alike. The hub's requests go the whole
way: token check, rate limit in Redis, a row-level-security read, queries,
JSON, the audit and metrics middleware. A read's switch to the caller's
company is skipped when the pooled connection's last read was for the same
company (`hub.db.Database.read`), as it mostly is under one company's
traffic; the row "16 companies in turn" has every request come from another
company than the one before, so that it never is. Each row also gives the
server process's own CPU time per request (PostgreSQL's and Redis's not
included).

`--before DIR` also runs the hub from another checkout (e.g. `git archive`
of an older commit unpacked in DIR) on the same database, and measures
GET /api/agents/:id on it in the same run: a before/after pair whose ratio
the machine's load does not skew.

`--profile PATH` runs the hub under cProfile (CPU time) and writes its
profile there (read it with `python -m pstats PATH`); its figures are then
not comparable.

Prints a markdown table; the last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import secrets
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.cluster import ROOT, free_port, wait_for_port
from bench.common import percentile, scratch_database
from bench.report import emit, number, table

REDIS_URL = (
    os.environ.get("BENCH_REDIS_URL")
    or os.environ.get("TEST_REDIS_URL")
    or "redis://127.0.0.1:6379/0"
)
# Companies whose requests alternate in the row that defeats read sessions.
COMPANIES = 16
BARE = """
import sys
from aiohttp import web
async def answer(request):
    return web.json_response({"conversations": [], "total": 0})
app = web.Application()
app.router.add_get("/bare", answer)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""
# The same row the hub's GET /api/agents/:id returns, by id, with the same
# pool size as the hub's; the hub's JSON encoder (orjson), so JSON costs the same.
BARE_ROW = """
import sys, uuid
import asyncpg
from aiohttp import web
from hub.jsoncodec import dumps
from hub.store.agents import COLUMNS
async def pool(app):
    app["pool"] = await asyncpg.create_pool(sys.argv[2], min_size=1, max_size=10)
    yield
    await app["pool"].close()
async def answer(request):
    row = await request.app["pool"].fetchrow(
        f"SELECT {COLUMNS} FROM agents WHERE id = $1", uuid.UUID(request.match_info["id"])
    )
    if row is None:
        raise web.HTTPNotFound()
    return web.Response(body=dumps(dict(row)), content_type="application/json")
app = web.Application()
app.cleanup_ctx.append(pool)
app.router.add_get("/agents/{id}", answer)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# The hub under cProfile timed in CPU seconds: on a shared machine a wall-clock
# profile is dominated by sends that wait for the scheduler.
PROFILED = """
import cProfile, runpy, sys, time
profile = cProfile.Profile(time.process_time)
sys.argv = ["hub", "serve"]
try:
    profile.runcall(runpy.run_module, "hub", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
finally:
    profile.dump_stats(sys.orig_argv[-1])
"""


@dataclass
class Tally:
    """One target's requests over every round."""

    samples: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    cpu: float = 0.0
    errors: int = 0

    def figures(self) -> dict:
        return {
            "requests_per_s": round(len(self.samples) / self.elapsed, 1),
            "server_cpu_ms_per_request": round(self.cpu * 1000 / max(1, len(self.samples)), 3),
            "p50_ms": round(percentile(self.samples, 50), 2),
            "p99_ms": round(percentile(self.samples, 99), 2),
            "errors": self.errors,
        }


async def drive(
    tally: Tally, calls: list[tuple[str, dict]], seconds: float, concurrency: int, server: int
) -> None:
    """`concurrency` keep-alive clients for `seconds`, each request the next
    of `calls` (url, headers) in turn, counted into `tally`, with the CPU time
    the server process (`server`, a pid; not PostgreSQL or Redis) spent
    meanwhile."""
    cpu_before = cpu_seconds(server)
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    turn = itertools.cycle(calls)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            while time.perf_counter() < deadline:
                url, headers = next(turn)
                started = time.perf_counter()
                async with http.get(url, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        tally.errors += 1
                tally.samples.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        tally.elapsed += time.perf_counter() - started
    tally.cpu += cpu_seconds(server) - cpu_before


async def start(
    argv: list[str], env: dict, port: int, cwd: Path = ROOT
) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, env=env, stdout=asyncio.subprocess.DEVNULL
    )
    try:
        await wait_for_port(port, within=60)
    except OSError:
        process.kill()
        raise RuntimeError(f"{argv} did not start (exit code {await process.wait()})") from None
    return process


async def stop(process: asyncio.subprocess.Process) -> None:
    process.terminate()
    await process.wait()


async def prepare(base: str, conversations: int = 40) -> tuple[dict, str]:
    """A company with an agent and `conversations` conversations; (staff
    headers, agent id)."""
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{base}/api/auth/signup",
            json={
                "email": f"rest-{uuid.uuid4().hex[:6]}@example.com",
                "password": "a long password",
                "company_name": "Bench",
            },
        ) as response:
            token = (await response.json())["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        async with http.post(
            f"{base}/api/agents", json={"name": "Bench"}, headers=headers
        ) as response:
            agent = await response.json()
        async with http.post(
            f"{base}/api/agents/{agent['id']}/keys",
            json={"allowed_origins": ["https://bench.example.com"]},
            headers=headers,
        ) as response:
            key = (await response.json())["key"]
        public = {"Authorization": f"Bearer {key}", "Origin": "https://bench.example.com"}
        for _ in range(conversations):  # something to list
            async with http.post(
                f"{base}/public/conversations", json={"agent_id": agent["id"]}, headers=public
            ) as response:
                await response.read()
    return headers, agent["id"]


def rest_table(figures: dict[str, dict]) -> str:
    constant = figures["bare aiohttp, constant JSON"]["requests_per_s"]
    row = figures["bare aiohttp + asyncpg, one row"]["requests_per_s"]
    return table(
        ["endpoint", "req/s", "p50", "p99", "server CPU per request", "of bare constant",
         "of bare one-row"],
        [
            (name, number(round(f["requests_per_s"])), f"{f['p50_ms']} ms", f"{f['p99_ms']} ms",
             f"{f['server_cpu_ms_per_request']:.3f} ms",
             f"{f['requests_per_s'] / constant:.2f}×", f"{f['requests_per_s'] / row:.2f}×")
            for name, f in figures.items()
        ],
    )  # fmt: skip


async def main(
    seconds: float,
    concurrency: int,
    rounds: int = 3,
    profile: str | None = None,
    before: Path | None = None,
) -> dict:
    bare_port, row_port, hub_port = free_port(), free_port(), free_port()
    processes: list[asyncio.subprocess.Process] = []
    async with scratch_database() as database_url:
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": REDIS_URL,
            "REDIS_PREFIX": f"bench-{uuid.uuid4().hex[:8]}",
            "JWT_SECRET": secrets.token_urlsafe(48),
            "PORT": str(hub_port),
            "LOG_LEVEL": "WARNING",
            "RATE_LIMIT_PER_HOUR": "10000000",
            "SYNTERA_DATA_DIR": str(Path("/tmp/syntera-bench-rest")),
        }
        hub_argv = [sys.executable, "-m", "hub", "serve"]
        if profile:
            hub_argv = [sys.executable, "-c", PROFILED, profile]
        try:
            hub = await start(hub_argv, env, hub_port)
            processes.append(hub)
            base = f"http://127.0.0.1:{hub_port}"
            headers, agent_id = await prepare(base)
            bare = await start([sys.executable, "-c", BARE, str(bare_port)], env, bare_port)
            processes.append(bare)
            argv = [sys.executable, "-c", BARE_ROW, str(row_port), database_url]
            bare_row = await start(argv, env, row_port)
            processes.append(bare_row)
            targets = [
                ("bare aiohttp, constant JSON", [(f"http://127.0.0.1:{bare_port}/bare", {})], bare),
                (
                    "bare aiohttp + asyncpg, one row",
                    [(f"http://127.0.0.1:{row_port}/agents/{agent_id}", {})],
                    bare_row,
                ),
            ]
            if before is not None:
                port = free_port()
                old_env = {**env, "PORT": str(port), "REDIS_PREFIX": env["REDIS_PREFIX"] + "-old"}
                old = await start([sys.executable, "-m", "hub", "serve"], old_env, port, before)
                processes.append(old)
                url = f"http://127.0.0.1:{port}/api/agents/{agent_id}"
                targets.append(("before: GET /api/agents/:id", [(url, headers)], old))
            for name, path in [
                ("GET /api/agents/:id", f"/api/agents/{agent_id}"),
                ("GET /api/agents", "/api/agents"),
                ("GET /api/conversations?limit=20", "/api/conversations?limit=20"),
            ]:
                targets.append((name, [(base + path, headers)], hub))
            # Every request from another company than the one before it: a
            # pooled connection is then never left switched to the caller's
            # company by its last read (what one company's traffic enjoys).
            others = [await prepare(base, conversations=0) for _ in range(COMPANIES - 1)]
            calls = [
                (f"{base}/api/agents/{agent}", company_headers)
                for company_headers, agent in [(headers, agent_id), *others]
            ]
            targets.append((f"GET /api/agents/:id, {COMPANIES} companies in turn", calls, hub))
            # Round-robin in short turns: a load swing on a shared machine
            # then falls on every target alike instead of on one.
            tallies = {name: Tally() for name, *_ in targets}
            for _ in range(rounds):
                for name, calls, process in targets:
                    await drive(tallies[name], calls, seconds / rounds, concurrency, process.pid)
        finally:
            for process in processes:
                await stop(process)
    figures = {name: tally.figures() for name, tally in tallies.items()}
    emit("rest", rest_table(figures))
    return {"concurrency": concurrency, "seconds": seconds, "rounds": rounds, **figures}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="turns each target's time is cut in")
    parser.add_argument("--profile", metavar="PATH", help="run the hub under cProfile")
    parser.add_argument("--before", metavar="DIR", type=Path, help="another checkout to compare")
    args = parser.parse_args()
    figures = asyncio.run(
        main(args.seconds, args.concurrency, args.rounds, args.profile, args.before)
    )
    print(json.dumps(figures))
