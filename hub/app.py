"""build_app(settings): composes the hub. The only module that imports the
core, the REST layer and the runtime together."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import redis.asyncio as aioredis
from aiohttp import web

import http_api
from hub.auth import TokenVerifier
from hub.config import Settings
from hub.db import connect
from hub.db.migrate import migrate
from hub.events import EventBus, RedisEventBus
from hub.metrics import Metrics
from hub.ratelimit import MemoryRateLimiter, RedisRateLimiter
from hub.services import SERVICES, Services

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


async def open_services(settings: Settings, *, run_migrations: bool = True) -> Services:
    settings = settings.ensure_jwt_secret()
    db = await connect(settings)
    if run_migrations:
        async with db.pool.acquire() as conn:
            await migrate(conn)
    metrics = Metrics()
    redis = None
    if settings.redis_url:
        redis = aioredis.from_url(
            settings.redis_url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30
        )
        limiter = RedisRateLimiter(
            redis, settings.redis_prefix, metrics.rate_limit_backend_errors.inc
        )
        events: EventBus = RedisEventBus(redis, settings.redis_url, settings.redis_prefix)
    else:
        limiter = MemoryRateLimiter()
        events = EventBus()
    metrics.watch_event_bus(events)
    await events.start()
    db.events = events
    return Services(
        settings=settings,
        db=db,
        verifier=TokenVerifier(settings),
        limiter=limiter,
        metrics=metrics,
        events=events,
        redis=redis,
    )


async def close_services(services: Services) -> None:
    await services.events.stop()
    if services.redis is not None:
        await services.redis.aclose()
    await services.db.close()


def build_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=http_api.MIDDLEWARES, client_max_size=settings.max_body_bytes)

    async def services_ctx(app: web.Application) -> AsyncIterator[None]:
        app[SERVICES] = await open_services(settings)
        yield
        await close_services(app[SERVICES])

    app.cleanup_ctx.append(services_ctx)
    http_api.install(app)

    async def index(request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "index.html")

    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC_DIR, append_version=False)
    return app
