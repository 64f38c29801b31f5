"""What the benchmarks share: a throwaway database, an in-process hub, timing."""

from __future__ import annotations

import os
import secrets
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from aiohttp.test_utils import TestClient, TestServer

from hub.app import build_app
from hub.config import Settings
from hub.db.migrate import migrate

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def server_url() -> str:
    """BENCH_DATABASE_URL, else TEST_DATABASE_URL, else the local server."""
    return (
        os.environ.get("BENCH_DATABASE_URL")
        or os.environ.get("TEST_DATABASE_URL")
        or DEFAULT_SERVER
    )


@asynccontextmanager
async def scratch_database(prefix: str = "syntera_bench") -> AsyncIterator[str]:
    """A fresh, migrated database, dropped afterwards."""
    base = server_url()
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(base)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(base)._replace(path=f"/{name}"))
    conn = await asyncpg.connect(url)
    await migrate(conn)
    await conn.close()
    try:
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@asynccontextmanager
async def hub_client(database_url: str, **overrides) -> AsyncIterator[TestClient]:
    defaults = {
        "jwt_secret": secrets.token_urlsafe(48),
        "data_dir": Path("/tmp/syntera-bench"),
        "rate_limit_per_hour": 10_000_000,
        "auth_rate_limit_per_hour": 10_000_000,
        "log_level": "WARNING",
    }
    settings = Settings(database_url=database_url, **{**defaults, **overrides})
    client = TestClient(TestServer(build_app(settings)))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


async def timed(fn: Callable[[], Awaitable[object]], repeat: int, warmup: int = 3) -> list[float]:
    """Milliseconds per call."""
    for _ in range(warmup):
        await fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(samples), 2),
        "p99_ms": round(percentile(samples, 99), 2),
    }
