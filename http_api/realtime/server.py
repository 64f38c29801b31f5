"""The python-socketio server, its namespaces and the bridge from the bus."""

from __future__ import annotations

from typing import Any

import socketio
from aiohttp import web

from http_api.realtime.bridge import Bridge
from http_api.realtime.dashboard import DashboardNamespace
from http_api.realtime.widget import WidgetNamespace
from hub import jsoncodec
from hub.config import Settings
from hub.services import SERVICES, Services


class _Json:
    """python-socketio wants `dumps` to return str; ours returns bytes."""

    @staticmethod
    def dumps(value: Any, *args: Any, **kwargs: Any) -> str:
        return jsoncodec.dumps(value).decode()

    @staticmethod
    def loads(raw: str | bytes, *args: Any, **kwargs: Any) -> Any:
        return jsoncodec.loads(raw)


class Realtime:
    """Owns the Socket.IO server of one web process.

    Every web process receives every domain event once through the event bus
    (Redis pub/sub when scaled out) and emits it to the sockets connected to
    it. That is why the server keeps python-socketio's in-memory client
    manager: an AsyncRedisManager on top would publish each emit to Redis a
    second time. docs/realtime.md, "Scaling out".
    """

    def __init__(self, app: web.Application, app_settings: Settings) -> None:
        self.app = app
        self.sio = socketio.AsyncServer(
            async_mode="aiohttp",
            # Browsers from any site may connect: the widget's conversation token
            # and its key's allowed origins decide (checked on connect), and the
            # dashboard needs a staff token. No cookies are used.
            cors_allowed_origins="*",
            json=_Json,
            ping_interval=app_settings.socket_ping_interval,
            ping_timeout=20,
            max_http_buffer_size=64 * 1024,
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
