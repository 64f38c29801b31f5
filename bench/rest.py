"""REST throughput of one `web` process, next to a bare aiohttp server.

    python -m bench.rest [--seconds 15] [--concurrency 32]

Starts `python -m hub serve` on a scratch database (with REDIS_URL, as when
scaled out) and, as the baseline, a bare aiohttp process that answers a
constant JSON body. The same client — N concurrent keep-alive connections
from this process — drives each for the same time. The hub's requests go the
whole way: JWT check, rate limit in Redis, a row-level-security transaction,
queries, JSON, the audit and metrics middleware.

The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import time
import uuid
from pathlib import Path

import aiohttp

from bench.cluster import ROOT, free_port, wait_for_port
from bench.common import percentile, scratch_database

REDIS_URL = (
    os.environ.get("BENCH_REDIS_URL")
    or os.environ.get("TEST_REDIS_URL")
    or "redis://127.0.0.1:6379/0"
)
BARE = """
import sys
from aiohttp import web
async def answer(request):
    return web.json_response({"conversations": [], "total": 0})
app = web.Application()
app.router.add_get("/bare", answer)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


async def drive(url: str, headers: dict, seconds: float, concurrency: int) -> dict:
    samples: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as http:

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                async with http.get(url) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                samples.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {
        "requests_per_s": round(len(samples) / elapsed, 1),
        "p50_ms": round(percentile(samples, 50), 2),
        "p99_ms": round(percentile(samples, 99), 2),
        "errors": errors,
    }


async def start(argv: list[str], env: dict, port: int) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        *argv, cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL
    )
    try:
        await wait_for_port(port, within=60)
    except OSError:
        process.kill()
        raise RuntimeError(f"{argv} did not start (exit code {await process.wait()})") from None
    return process


async def main(seconds: float, concurrency: int) -> dict:
    figures: dict[str, dict] = {}
    bare_port, hub_port = free_port(), free_port()
    bare = await start([sys.executable, "-c", BARE, str(bare_port)], dict(os.environ), bare_port)
    try:
        figures["bare_aiohttp"] = await drive(
            f"http://127.0.0.1:{bare_port}/bare", {}, seconds, concurrency
        )
    finally:
        bare.terminate()
        await bare.wait()

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
        hub = await start([sys.executable, "-m", "hub", "serve"], env, hub_port)
        base = f"http://127.0.0.1:{hub_port}"
        try:
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
                for _ in range(40):  # something to list
                    async with http.post(
                        f"{base}/public/conversations",
                        json={"agent_id": agent["id"]},
                        headers=public,
                    ) as response:
                        await response.read()
            for name, path in [
                ("GET /api/agents", "/api/agents"),
                ("GET /api/conversations?limit=20", "/api/conversations?limit=20"),
            ]:
                figures[name] = await drive(base + path, headers, seconds, concurrency)
        finally:
            hub.terminate()
            await hub.wait()

    bare_rate = figures["bare_aiohttp"]["requests_per_s"]
    print(f"{'endpoint':<34}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'of bare':>9}")
    for name, row in figures.items():
        share = f"{row['requests_per_s'] / bare_rate:.2f}"
        print(f"{name:<34}{row['requests_per_s']:>9}{row['p50_ms']:>9}{row['p99_ms']:>9}{share:>9}")
    return {"concurrency": concurrency, "seconds": seconds, **figures}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.seconds, args.concurrency))))
