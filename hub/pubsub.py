"""One listening connection of the Redis event bus: to the single Redis, or
to one node of a Redis Cluster (sharded pub/sub delivers a channel's
messages only on the node that owns its slot, so a process listens on one
connection per node that owns a channel it follows).

The connection keeps the set of channels it should be subscribed to and
subscribes to all of them again after a reconnect; the bus is told when a
channel's subscription is confirmed (from then on nothing published to it is
missed) and when the connection was lost and came back (what was published
meanwhile is gone: a gap).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from hub import jsoncodec

log = logging.getLogger(__name__)


class Listener:
    def __init__(
        self,
        connect: Callable[[], aioredis.Redis],
        *,
        sharded: bool,
        on_message: Callable[[str, bytes], None],
        on_confirmed: Callable[[str], None],
        on_lost: Callable[[Listener], Awaitable[None]],
        on_back: Callable[[Listener], Awaitable[None]],
    ) -> None:
        self._connect = connect
        self.sharded = sharded
        self._on_message = on_message
        self._on_confirmed = on_confirmed
        self._on_lost = on_lost
        self._on_back = on_back
        self.channels: set[str] = set()
        self._pubsub: aioredis.client.PubSub | None = None
        self._task: asyncio.Task | None = None
        self._client: aioredis.Redis | None = None
        self._wake = asyncio.Event()
        self._lost = False

    @property
    def lost(self) -> bool:
        """The connection dropped and is not back yet."""
        return self._lost

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._client is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._client.aclose()

    async def add(self, channel: str) -> None:
        self.channels.add(channel)
        pubsub = self._pubsub
        if pubsub is None:
            self._wake.set()  # subscribed with the others once connected
            return
        with contextlib.suppress(RedisError, OSError):  # the reader reconnects and resubscribes
            await (pubsub.ssubscribe if self.sharded else pubsub.subscribe)(channel)

    async def remove(self, channel: str) -> None:
        self.channels.discard(channel)
        pubsub = self._pubsub
        if pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await (pubsub.sunsubscribe if self.sharded else pubsub.unsubscribe)(channel)

    async def _run(self) -> None:
        confirm = ("ssubscribe", "subscribe")
        data = ("smessage", "message")
        while True:  # reconnects by itself after a Redis restart
            if not self.channels:
                self._wake.clear()
                await self._wake.wait()
            try:
                channels = sorted(self.channels)
                if not channels:
                    continue
                self._client = self._connect()
                async with self._client.pubsub() as pubsub:
                    if self.sharded:
                        # One SSUBSCRIBE each: on a cluster one command may name
                        # channels of one slot only (CROSSSLOT), and a node owns many.
                        for channel in channels:
                            await pubsub.ssubscribe(channel)
                    else:
                        await pubsub.subscribe(*channels)
                    self._pubsub = pubsub
                    while pubsub.subscribed:
                        message = await pubsub.get_message(timeout=None)
                        if message is None:
                            continue
                        kind = message["type"]
                        channel = message["channel"]
                        channel = channel.decode() if isinstance(channel, bytes) else channel
                        if kind in data:
                            self._on_message(channel, message["data"])
                        elif kind in confirm:
                            self._on_confirmed(channel)
                            if self._lost:
                                self._lost = False
                                await self._on_back(self)
                        elif kind == "sunsubscribe" and channel in self.channels:
                            # Not asked for: the cluster moved the channel's slot
                            # to another node. Start over where it lives now.
                            raise RedisError(f"slot of {channel} moved")
                continue  # every channel was removed: wait for the next
            except (RedisError, OSError) as error:
                reason = jsoncodec.dumps(str(error)).decode()
                log.warning('{"event":"event_reader_reconnecting","reason":%s}', reason)
            finally:
                self._pubsub = None
                if self._client is not None:
                    with contextlib.suppress(RedisError, OSError):
                        await self._client.aclose()
            if not self._lost:
                self._lost = True
                await self._on_lost(self)
            await asyncio.sleep(0.5)
