"""The python-socketio server, its namespaces and the bridge from the bus."""

from __future__ import annotations

import logging
from typing import Any

import socketio
from aiohttp import web

from http_api.realtime.bridge import Bridge
from http_api.realtime.dashboard import DashboardNamespace
from http_api.realtime.frames import Frame, Json, MalformedFrame
from http_api.realtime.manager import IndexedManager
from http_api.realtime.widget import WidgetNamespace
from hub import jsoncodec
from hub.config import Settings
from hub.services import SERVICES, Services

log = logging.getLogger(__name__)


class _Server(socketio.AsyncServer):
    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        # python-socketio's one entry for every frame; what it cannot read as
        # a packet would be logged and dropped by Engine.IO. Here the client
        # is told why, on each namespace it joined, and the connection closed.
        try:
            await super()._handle_eio_message(eio_sid, data)
        except MalformedFrame as malformed:
            reason = jsoncodec.dumps(str(malformed)).decode()
            log.warning('{"event":"socket_frame_malformed","reason":%s}', reason)
            for namespace in self.manager.get_namespaces():
                sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
                if sid is not None:
                    await self.emit("error", malformed.error.body(), to=sid, namespace=namespace)
            await self.eio.disconnect(eio_sid)


class Realtime:
    """Owns the Socket.IO server of one web process.

    Every web process receives, once, each domain event its sockets need
    through the event bus (over Redis, the topics they follow: hub/events.py)
    and emits it to the sockets connected to it. That is why the server keeps
    python-socketio's in-memory client manager: an AsyncRedisManager on top
    would publish each emit to Redis a second time. docs/realtime.md, "Scaling out".
    """

    def __init__(self, app: web.Application, app_settings: Settings) -> None:
        self.app = app
        self.sio = _Server(
            async_mode="aiohttp",
            # Every frame is read by `Frame`, so that none goes unanswered.
            serializer=Frame,
            # Browsers from any site may connect: the widget's conversation token
            # and its key's allowed origins decide (checked on connect), and the
            # dashboard needs a staff token. No cookies are used.
            cors_allowed_origins="*",
            json=Json,
            ping_interval=app_settings.socket_ping_interval,
            ping_timeout=20,
            max_http_buffer_size=64 * 1024,
            client_manager=IndexedManager(),
        )
        self.sio.attach(app)
        self.widget = WidgetNamespace(self)
        self.dashboard = DashboardNamespace(self)
        self.sio.register_namespace(self.widget)
        self.sio.register_namespace(self.dashboard)
        self.bridge = Bridge(self)

    @property
    def services(self) -> Services:
        return self.app[SERVICES]

    def start(self) -> None:
        self.services.events.subscribe(self.bridge.deliver)
        self.services.events.on_gap(self.bridge.resync)
