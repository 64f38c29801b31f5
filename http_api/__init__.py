"""The transport layer: every way into the hub. REST resources, pages,
operational endpoints, the Twilio webhook and the voice WebSockets are
declared on one route table (`routes`, `routing`), which also writes the
OpenAPI document; Socket.IO's namespaces are in `realtime`. What they share
with each other lives below them, in `hub` (errors, rate limits, shapes)."""

from collections.abc import Callable

from aiohttp import web

from http_api.middleware import cors, errors, observe, stamp_headers
from http_api.realtime import Realtime
from http_api.routes import api, voice_sockets
from hub.config import Settings
from hub.services import Services

MIDDLEWARES = (observe, cors, errors)


def install(
    app: web.Application,
    settings: Settings,
    voice_calls: Callable[[Services], voice_sockets.VoiceCalls],
) -> None:
    """Every way in, on `app` (after the context that opens its services);
    `voice_calls` builds what runs a voice call."""
    app.on_response_prepare.append(stamp_headers)
    api.install(app)
    realtime = Realtime(app, settings)

    async def realtime_ctx(app: web.Application):
        realtime.start()
        yield

    app.cleanup_ctx.append(realtime_ctx)
    voice_sockets.install(app, voice_calls)


__all__ = ["MIDDLEWARES", "install"]
