"""Serve a fake outside pytest-aiohttp: the benchmarks, and tests whose hub
outlives one test's event loop, reach it on loopback like any other server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol, TypeVar

from aiohttp import web


class Fake(Protocol):
    url: str | None

    def app(self) -> web.Application: ...


F = TypeVar("F", bound=Fake)


@asynccontextmanager
async def served(fake: F) -> AsyncIterator[F]:
    """`fake` on a free loopback port (its `url` set) until the block ends."""
    runner = web.AppRunner(fake.app(), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        fake.url = f"http://{host}:{port}"
        yield fake
    finally:
        fake.url = None
        await runner.cleanup()
