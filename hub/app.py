"""build_app(settings): composes the hub. The only module that imports the
core, the REST layer and the runtime together."""

from __future__ import annotations

import asyncio
import html
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

import http_api
from agents_runtime import runtime
from agents_runtime.voice import sockets as voice_sockets
from hub import gdpr, lifecycle
from hub.config import Settings
from hub.demo import Demo, ensure_demo
from hub.jobs import InProcessQueue
from hub.realtime import Realtime
from hub.services import SERVICES, close_services, open_services

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
DEMO = web.AppKey("demo", Demo)
# The dashboard runs only its own scripts and styles: even if stored text ever
# reached the page as markup, a script in it would not run.
DASHBOARD_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)


def build_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=http_api.MIDDLEWARES, client_max_size=settings.max_body_bytes)

    async def services_ctx(app: web.Application) -> AsyncIterator[None]:
        services = app[SERVICES] = await open_services(settings)
        knowledge = runtime.attach_knowledge(services)
        workflows = runtime.attach_workflows(services)
        yield
        await close_services(services)
        await workflows.close()
        knowledge.close()

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

    realtime = Realtime(app, settings)

    async def realtime_ctx(app: web.Application) -> AsyncIterator[None]:
        realtime.start()
        yield

    app.cleanup_ctx.append(services_ctx)
    app.cleanup_ctx.append(realtime_ctx)
    app.cleanup_ctx.append(embedded_worker_ctx)
    app.cleanup_ctx.append(upkeep_ctx)
    http_api.install(app)
    voice_sockets.install(app)  # voice over the hub's own sockets (no LiveKit needed)

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

    app.cleanup_ctx.append(demo_ctx)

    async def index(request: web.Request) -> web.Response:
        demo = app.get(DEMO)
        page = (STATIC_DIR / "index.html").read_text()
        values = {
            "{{DEMO_AGENT_ID}}": demo.agent_id if demo else "",
            "{{DEMO_KEY}}": demo.key if demo else "",
            "{{DEMO_LOGIN}}": (
                f"{demo.email} (password in {settings.data_dir / 'demo.json'})"
                if demo
                else "the demo is off (SYNTERA_DEMO=0): sign up with POST /api/auth/signup"
            ),
        }
        for placeholder, value in values.items():
            page = page.replace(placeholder, html.escape(value))
        return web.Response(text=page, content_type="text/html")

    async def widget_js(request: web.Request) -> web.FileResponse:
        response = web.FileResponse(STATIC_DIR / "widget.js")
        response.headers["Cache-Control"] = "public, max-age=300"
        response.headers["Access-Control-Allow-Origin"] = "*"  # embedded by other sites
        return response

    async def dashboard(request: web.Request) -> web.FileResponse:
        response = web.FileResponse(STATIC_DIR / "app" / "index.html")
        response.headers["Content-Security-Policy"] = DASHBOARD_CSP
        return response

    app.router.add_get("/", index)
    app.router.add_get("/app", dashboard)
    app.router.add_get("/widget.js", widget_js)
    app.router.add_static("/static/", STATIC_DIR, append_version=False)
    return app
