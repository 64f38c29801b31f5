"""Domain events and the one bus that carries them.

Code that changes something publishes an Event; the real-time hub, workflows
and notifications subscribe. In-process (embedded mode) a publish reaches this
process's subscribers; with Redis every process's subscribers, through one
pub/sub channel. Either way each process delivers events to its subscribers
one at a time, in the order they arrived, so a subscriber never sees a
conversation's messages out of order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any
from uuid import UUID

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from hub import jsoncodec

log = logging.getLogger(__name__)

Subscriber = Callable[["Event"], Awaitable[None]]
GapListener = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Event:
    type: str  # e.g. "message.created", "notification.created"
    company_id: UUID
    data: dict[str, Any]
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def encode(self) -> bytes:
        return jsoncodec.dumps(asdict(self))

    @classmethod
    def decode(cls, raw: bytes | str) -> Event:
        value = jsoncodec.loads(raw)
        return cls(value["type"], UUID(value["company_id"]), value["data"], value["id"])


class EventBus:
    """In-process bus; also the local delivery half of the Redis bus."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._dispatcher: asyncio.Task | None = None
        self._gap_listeners: list[GapListener] = []
        self.publish_failures = 0

    def subscribe(self, subscriber: Subscriber) -> None:
        """Deliver every event to `subscriber`, in every process."""
        self._subscribers.append(subscriber)

    def on_gap(self, listener: GapListener) -> None:
        """Call `listener` when this process may have missed events (it lost
        the bus and has it back), so that what it serves can catch up from the
        database. The in-process bus never misses any."""
        self._gap_listeners.append(listener)

    async def _gap(self) -> None:
        for listener in self._gap_listeners:
            try:
                await listener()
            except Exception:
                log.exception('{"event":"gap_listener_failed"}')

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """For subscribers that live shorter than the process (a voice call)."""
        with contextlib.suppress(ValueError):
            self._subscribers.remove(subscriber)

    async def publish(self, event: Event) -> None:
        # Subscribers get the JSON form in both modes (ids and times as strings),
        # so a subscriber tested in-process behaves the same over Redis.
        self._queue.put_nowait(Event.decode(event.encode()))

    async def start(self) -> None:
        self._dispatcher = asyncio.create_task(self._dispatch(), name="event-dispatch")

    async def stop(self) -> None:
        await self._queue.join()  # what was published is delivered before we go
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher

    async def _dispatch(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                # A copy: a subscriber may unsubscribe (a voice call ending) meanwhile.
                for subscriber in tuple(self._subscribers):
                    try:
                        await subscriber(event)
                    except Exception:
                        log.exception('{"event":"subscriber_failed","type":"%s"}', event.type)
            finally:
                self._queue.task_done()


class RedisEventBus(EventBus):
    """Publishes to a Redis channel; every process (this one too) receives from it."""

    def __init__(self, client: aioredis.Redis, url: str, prefix: str) -> None:
        super().__init__()
        self.client = client
        # Subscribing needs a connection without a read timeout: the shared
        # client's would drop the subscription whenever the channel is quiet.
        self.channel = f"{prefix}:events"
        self._listener = aioredis.from_url(
            url,
            socket_connect_timeout=5,
            health_check_interval=30,
            client_name=self.channel,  # who is who in CLIENT LIST
        )
        self._reader: asyncio.Task | None = None
        self._subscribed = asyncio.Event()

    async def publish(self, event: Event) -> None:
        try:
            await self.client.publish(self.channel, event.encode())
        except (RedisError, OSError):
            # The change itself is stored; only its live delivery is lost.
            # Counted so that it shows in /metrics, not only in the log.
            self.publish_failures += 1
            log.warning('{"event":"event_publish_failed","type":"%s"}', event.type)

    async def start(self) -> None:
        await super().start()
        self._reader = asyncio.create_task(self._read(), name="event-reader")
        await asyncio.wait_for(self._subscribed.wait(), timeout=10)

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._listener.aclose()
        await super().stop()

    async def _read(self) -> None:
        while True:  # reconnects by itself after a Redis restart
            try:
                async with self._listener.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    if self._subscribed.is_set():
                        # Back after a loss: whatever was published meanwhile
                        # did not reach us. Pub/sub keeps nothing for later.
                        log.warning('{"event":"event_reader_resubscribed"}')
                        await self._gap()
                    self._subscribed.set()
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            self._queue.put_nowait(Event.decode(message["data"]))
            except (RedisError, OSError):
                log.warning('{"event":"event_reader_reconnecting"}')
                await asyncio.sleep(0.5)
