"""build_app(settings): composes the hub. The only module that imports the
core, the REST layer and the runtime together."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

import http_api
from agents_runtime import runtime
from hub import lifecycle
from hub.config import Settings
from hub.jobs import InProcessQueue
from hub.realtime import Realtime
from hub.services import SERVICES, close_services, open_services

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


def build_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=http_api.MIDDLEWARES, client_max_size=settings.max_body_bytes)

    async def services_ctx(app: web.Application) -> AsyncIterator[None]:
        app[SERVICES] = await open_services(settings)
        yield
        await close_services(app[SERVICES])

    async def embedded_worker_ctx(app: web.Application) -> AsyncIterator[None]:
        # Embedded mode: agent turns run in this process. Scaled out, `web`
        # only enqueues and `python -m agents_runtime` processes consume.
        services = app[SERVICES]
        if isinstance(services.jobs, InProcessQueue):
            runtime.install(services)
            await services.jobs.start()
            await lifecycle.recover_turns(services)
        yield  # close_services stops the queue, letting running turns finish

    async def upkeep_ctx(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(lifecycle.run_periodically(app[SERVICES]))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    realtime = Realtime(app, settings)

    async def realtime_ctx(app: web.Application) -> AsyncIterator[None]:
        realtime.start()
        yield

    app.cleanup_ctx.append(services_ctx)
    app.cleanup_ctx.append(realtime_ctx)
    app.cleanup_ctx.append(embedded_worker_ctx)
    app.cleanup_ctx.append(upkeep_ctx)
    http_api.install(app)

    async def index(request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "index.html")

    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC_DIR, append_version=False)
    return app
