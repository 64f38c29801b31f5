"""Voice without a LiveKit server, mounted on `web` by hub/app.py: the
browser's voice WebSocket and Twilio's webhook and media streams
(docs/voice.md). Sessions run in this process, within its caps."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from agents_runtime import runtime
from agents_runtime.voice import models, phone
from agents_runtime.voice.streams import STREAMS, VoiceStreams, browser_socket
from hub.services import SERVICES
from hub.voice.slots import VoiceSlots


def install(app: web.Application) -> None:
    async def streams_ctx(app: web.Application) -> AsyncIterator[None]:
        # On the loop's (main) thread, before the first call: a no-op once
        # `serve` has loaded them; an app built another way loads them here.
        models.load_speech()
        services = app[SERVICES]
        settings = services.settings
        slots = VoiceSlots(
            settings.voice_sessions_per_company,
            settings.voice_sessions_per_process,
            services.redis,
            settings.redis_prefix,
        )
        streams = app[STREAMS] = VoiceStreams(slots, runtime.build_llm(settings))
        services.events.subscribe(streams.on_event)
        yield
        services.events.unsubscribe(streams.on_event)

    app.cleanup_ctx.append(streams_ctx)
    app.router.add_get("/public/voice/ws", browser_socket)
    app.router.add_post("/voice/twilio/incoming", phone.twilio_incoming)
    app.router.add_get("/voice/twilio/stream", phone.twilio_stream)
