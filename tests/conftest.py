"""Test infrastructure: a real PostgreSQL and a real Redis, and hub apps on them.

PostgreSQL: TEST_DATABASE_URL when set (CI: this machine's server), else an
embedded one from pgserver. Each run gets a fresh database, dropped at the end.
Redis: TEST_REDIS_URL when set, else a private redis-server on a free port.
Tests share one database: every test makes its own companies, so isolation
comes from tenancy itself rather than from truncating tables.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis as sync_redis
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import async_playwright
from pytest_aiohttp import AiohttpClient, AiohttpServer

from bench.cluster import free_port
from fakes.livekit import FakeLiveKit
from fakes.openai import FakeOpenAI
from fakes.serve import Fake
from hub.app import build_app
from hub.config import Settings
from hub.db.migrate import migrate
from tests.helpers import Account, signup


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def tmp_root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="syntera-tests-"))
    # As root, pgserver runs PostgreSQL as its own unprivileged user, which must
    # be able to reach the data directory inside this one.
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server_url(tmp_root: Path) -> Iterator[str]:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    from hub.db.embedded import embedded_database_url

    yield embedded_database_url(tmp_root)


@contextlib.asynccontextmanager
async def fresh_database(server_url: str) -> AsyncIterator[str]:
    """A new, migrated database on the server, dropped afterwards."""
    name = f"syntera_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = _with_database(server_url, name)
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    try:
        yield url
    finally:
        admin = await asyncpg.connect(server_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture(scope="session")
async def database_url(postgres_server_url: str) -> AsyncIterator[str]:
    """A fresh database for this run, on the server above."""
    async with fresh_database(postgres_server_url) as url:
        yield url


@pytest.fixture
async def own_database(postgres_server_url: str) -> AsyncIterator[str]:
    """A database for one test alone: for checks that measure what the hub
    does with their own documents, which the session database's shared
    ingestion queue (documents other tests left) would disturb."""
    async with fresh_database(postgres_server_url) as url:
        yield url


@pytest.fixture(scope="session")
def redis_url(tmp_root: Path) -> Iterator[str]:
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            "redis-server is not installed and TEST_REDIS_URL is not set (scripts/test installs it)"
        )
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_root),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = sync_redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except sync_redis.ConnectionError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def base_settings(database_url: str, tmp_root: Path) -> Settings:
    return Settings(
        database_url=database_url,
        jwt_secret=secrets.token_urlsafe(48),
        data_dir=tmp_root / "data",
        # Tests sign up many companies from one address.
        auth_rate_limit_per_hour=1_000_000,
        rate_limit_per_hour=1_000_000,
        redis_prefix=f"syntera-test-{uuid.uuid4().hex[:8]}",
    )


async def start_client(settings: Settings) -> TestClient:
    """A hub that outlives one test (the session's `client`, a module's own
    hub). pytest-aiohttp's `aiohttp_client` is function-scoped, so these are
    built the way it builds its clients, on aiohttp's TestServer and
    TestClient, and closed by their fixture. A hub for one test comes from
    `make_client`."""
    client = TestClient(TestServer(build_app(settings)))
    await client.start_server()
    return client


@pytest.fixture(scope="session")
async def client(base_settings: Settings) -> AsyncIterator[TestClient]:
    """One hub for the whole run, in the embedded-style single-process mode:
    building an app (its pools, its workers) is not free, and tests isolate
    themselves by tenancy, not by hub."""
    client = await start_client(base_settings)
    yield client
    await client.close()


@pytest.fixture
def make_client(base_settings: Settings, aiohttp_client: AiohttpClient):
    """Start hubs with settings of the test's own (pytest-aiohttp closes them
    at the end of the test)."""

    async def make(**overrides) -> TestClient:
        return await aiohttp_client(build_app(base_settings.with_overrides(**overrides)))

    return make


@pytest.fixture
async def account(client: TestClient) -> Account:
    return await signup(client)


async def serve_fake(fake: Fake, aiohttp_server: AiohttpServer) -> None:
    """A fake from fakes/ on pytest-aiohttp's server, for one test."""
    server = await aiohttp_server(fake.app())
    fake.url = str(server.make_url("")).rstrip("/")


@pytest.fixture
async def fake(aiohttp_server: AiohttpServer) -> FakeOpenAI:
    """The small OpenAI-compatible server (fakes/openai.py); request it
    before a hub that uses it, so that it outlives the hub."""
    model = FakeOpenAI()
    await serve_fake(model, aiohttp_server)
    return model


@pytest.fixture
async def livekit(aiohttp_server: AiohttpServer) -> FakeLiveKit:
    """The stand-in for LiveKit's server API (fakes/livekit.py); request
    it before a hub that uses it."""
    server = FakeLiveKit()
    await serve_fake(server, aiohttp_server)
    return server


CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # A page a test serves itself (page.route) has no address space, so
    # Chromium would treat its calls to the hub on 127.0.0.1 as reaching into
    # a local network from the internet, and block them.
    "--disable-features=LocalNetworkAccessChecks",
]


@pytest.fixture
async def browser():
    """Headless Chromium from the OS packages (never `playwright install`)."""
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    assert executable, "Chromium is missing: scripts/test installs the OS package `chromium`"
    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield instance
        await instance.close()
