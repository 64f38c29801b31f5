"""What both namespaces share: event names with colons, standard errors in
acks, and the flood limits: connection attempts per address
(hub.ratelimit, shared with the voice sockets), events per connection.
Handlers read their payloads with `hub.inputs.validated`, as REST reads
bodies, so that both paths answer the same input the same way."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import socketio

from http_api.realtime.frames import RefusedFrame
from hub.addresses import client_address
from hub.db.database import CONNECTION_ERRORS, database_unavailable
from hub.errors import ApiError
from hub.ratelimit import count_socket_connect

if TYPE_CHECKING:
    from http_api.realtime.server import Realtime

log = logging.getLogger(__name__)

Handler = Callable[[str, Any], Awaitable[dict[str, Any]]]


def error_ack(error: ApiError) -> dict[str, Any]:
    return {"ok": False, **error.body()}


def refuse(error: ApiError) -> socketio.exceptions.ConnectionRefusedError:
    """A refused connection: the client's connect_error gets the standard error as `data`."""
    return socketio.exceptions.ConnectionRefusedError(error.message, error.body())


class FloodGuard:
    """At most `limit` events per `window` seconds on one connection."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit, self.window = limit, window
        self.times: deque[float] = deque()

    def allow(self) -> bool:
        now = time.monotonic()
        while self.times and now - self.times[0] > self.window:
            self.times.popleft()
        if len(self.times) >= self.limit:
            return False
        self.times.append(now)
        return True


# Every event counts against a connection's budget of this many times the
# message limit: typing, resume and made-up names as much as messages.
EVENTS_PER_MESSAGE = 3


class Namespace(socketio.AsyncNamespace):
    """Dispatches `message:send`-style event names to handlers registered in
    `events`, and turns every failure into the standard error in the ack.
    Connection attempts are counted per address (in Redis when scaled out)
    before any token is looked at; a connected socket's events per minute are
    bounded before any handler runs."""

    events: dict[str, str] = {}  # event name -> method name

    def __init__(self, namespace: str, realtime: Realtime) -> None:
        super().__init__(namespace)
        self.realtime = realtime

    @property
    def services(self):
        return self.realtime.services

    async def trigger_event(self, event: str | RefusedFrame, *args: Any) -> Any:
        if event == "connect":
            await self._count_attempt(args[1])
            await super().trigger_event(event, *args)
            limit = self.services.settings.socket_messages_per_minute * EVENTS_PER_MESSAGE
            await self.save_session(
                args[0], {**await self.get_session(args[0]), "events": FloodGuard(limit)}
            )
            return None
        if event == "disconnect":
            return await super().trigger_event(event, *args)
        method = self.events.get(event) if isinstance(event, str) else None
        sid = args[0]
        events: FloodGuard = (await self.get_session(sid))["events"]
        if not events.allow():
            return error_ack(
                ApiError.rate_limited(
                    "Too many events; wait a moment", limit_per_minute=events.limit
                )
            )
        if method is None and not isinstance(event, RefusedFrame):
            return error_ack(ApiError.bad_request("UNKNOWN_EVENT", f"Unknown event {event!r}"))
        payload = args[1] if len(args) > 1 else None
        status = 200
        try:
            if isinstance(event, RefusedFrame):  # a frame python-socketio could not read
                raise event.error
            result = await getattr(self, method)(sid, payload)
        except ApiError as error:
            await self.emit("error", error.body(), to=sid)
            status, result = error.status, error_ack(error)
        except CONNECTION_ERRORS:
            error = database_unavailable()
            status, result = error.status, error_ack(error)
        except Exception:
            log.exception('{"event":"socket_handler_failed","name":"%s"}', event)
            status = 500
            result = error_ack(ApiError(500, "INTERNAL_ERROR", "Something went wrong on our side"))
        await self.handled(sid, event, payload, status)
        return result

    async def handled(self, sid: str, event: str, payload: Any, status: int) -> None:
        """After each event, with the status it ended with (as REST would answer)."""

    @staticmethod
    def peer(environ: dict) -> str | None:
        """python-socketio's aiohttp driver puts 127.0.0.1 in REMOTE_ADDR; the
        request knows the peer."""
        request = environ.get("aiohttp.request")
        return request.remote if request is not None else environ.get("REMOTE_ADDR")

    def client_address(self, environ: dict) -> str:
        """The visitor's or staff member's address."""
        return client_address(
            self.peer(environ),
            environ.get("HTTP_X_FORWARDED_FOR"),
            self.services.settings.trusted_proxies,
        )

    async def _count_attempt(self, environ: dict) -> None:
        try:
            await count_socket_connect(
                self.services, self.peer(environ), environ.get("HTTP_X_FORWARDED_FOR")
            )
        except ApiError as error:
            raise refuse(error) from None
