"""build_app(settings): composes the hub. The only module that imports the
core, the transport layer and the runtime together."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

import http_api
from agents_runtime import runtime
from agents_runtime.voice.streams import VoiceAgent
from hub import gdpr, lifecycle
from hub.config import Settings
from hub.demo import DEMO, ensure_demo
from hub.jobs import InProcessQueue
from hub.services import SERVICES, close_services, open_services


def build_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=http_api.MIDDLEWARES, client_max_size=settings.max_body_bytes)

    async def services_ctx(app: web.Application) -> AsyncIterator[None]:
        services = app[SERVICES] = await open_services(settings, runtime.parts)
        yield
        await close_services(services)

    async def embedded_worker_ctx(app: web.Application) -> AsyncIterator[None]:
        # Embedded mode: agent turns run in this process. Scaled out, `web`
        # only enqueues and `python -m agents_runtime` processes consume.
        services = app[SERVICES]
        ingestion = None
        if isinstance(services.jobs, InProcessQueue):
            runtime.install(services)
            await services.jobs.start()
            await lifecycle.recover_turns(services)
            ingestion = asyncio.create_task(services.knowledge.run())
            services.workflows.start_timers()
        yield  # close_services stops the queue, letting running turns finish
        await services.workflows.stop_timers()
        if ingestion is not None:
            ingestion.cancel()
            await asyncio.gather(ingestion, return_exceptions=True)

    async def upkeep_ctx(app: web.Application) -> AsyncIterator[None]:
        services = app[SERVICES]
        tasks = [
            asyncio.create_task(lifecycle.run_periodically(services)),
            asyncio.create_task(gdpr.run_retention(services)),
            asyncio.create_task(services.metrics.watch_event_loop()),
        ]
        yield
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def demo_ctx(app: web.Application) -> AsyncIterator[None]:
        if settings.demo_enabled:
            app[DEMO] = await ensure_demo(app[SERVICES])
            print(
                f"Demo: the page at / chats with the demo agent; log in to the dashboard "
                f"at /app (or the API) as {app[DEMO].email} with the password in "
                f"{settings.data_dir / 'demo.json'}",
                flush=True,
            )
        yield

    app.cleanup_ctx.append(services_ctx)
    # Every way in (REST, pages, Socket.IO, the voice sockets); voice calls that
    # land on this process run here, on the runtime's voice agent.
    http_api.install(app, settings, VoiceAgent.open)
    app.cleanup_ctx.append(embedded_worker_ctx)
    app.cleanup_ctx.append(upkeep_ctx)
    app.cleanup_ctx.append(demo_ctx)
    return app
