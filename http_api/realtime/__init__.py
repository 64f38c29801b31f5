"""Socket.IO: the `/widget` and `/dashboard` namespaces on the hub's aiohttp
app, fed by the event bus. The protocol is documented in docs/realtime.md."""

from http_api.realtime.server import Realtime

__all__ = ["Realtime"]
