"""Fixed-window request counters: in-process, or in Redis when REDIS_URL is set
so that every process behind the load balancer shares one count; and the
budgets every way in shares (the 429 of an exhausted quota, socket connection
attempts per address)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from hub.addresses import client_address
from hub.errors import ApiError

if TYPE_CHECKING:
    from hub.services import Services

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Quota:
    limit: int
    remaining: int
    reset_at: int  # unix seconds when the window ends
    allowed: bool

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_at),
        }

    def retry_after(self, now: float | None = None) -> int:
        return max(1, self.reset_at - int(now if now is not None else time.time()))

    def refusal(self, message: str = "Too many requests") -> ApiError:
        """The 429 of this exhausted quota."""
        return ApiError.rate_limited(
            message, self.retry_after(), limit=self.limit, reset_at=self.reset_at
        )


def _quota(count: int, limit: int, reset_at: int) -> Quota:
    return Quota(limit, max(0, limit - count), reset_at, count <= limit)


class MemoryRateLimiter:
    def __init__(self) -> None:
        self._counts: dict[str, tuple[int, int]] = {}  # key -> (window start, count)
        self._next_sweep = 0.0

    async def hit(self, key: str, limit: int, window: int) -> Quota:
        now = time.time()
        start = int(now // window * window)
        if now >= self._next_sweep:  # drop finished windows now and then
            self._counts = {k: v for k, v in self._counts.items() if v[0] + window > now}
            self._next_sweep = now + 60
        seen_start, count = self._counts.get(key, (start, 0))
        count = count + 1 if seen_start == start else 1
        self._counts[key] = (start, count)
        return _quota(count, limit, start + window)


# INCRBY and EXPIREAT as one atomic script: one command and one reply where
# a MULTI/EXEC pipeline of the two takes four (it runs on every request).
_COUNT = """
local count = redis.call('INCRBY', KEYS[1], ARGV[2])
redis.call('EXPIREAT', KEYS[1], ARGV[1])
return count
"""


class RedisRateLimiter:
    """Counts in Redis, with at most one call per counter under way: hits on
    a counter that arrive in the same turn of the event loop, or while its
    previous call is out, go to Redis together as one INCRBY of their number
    (a dashboard's burst from one user, a page's parallel calls), and each
    gets the count a separate INCR would have given it, in arrival order.
    The same counting, a Redis call per burst instead of per request."""

    def __init__(
        self, client: aioredis.Redis, prefix: str, on_failure: Callable[[], None] = lambda: None
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.on_failure = on_failure
        self._count = client.register_script(_COUNT)  # EVALSHA, loading it when Redis lacks it
        # Redis key -> the hits waiting to be sent; the keys with a call out.
        self._waiting: dict[str, list[asyncio.Future[int]]] = {}
        self._out: dict[str, asyncio.Task] = {}

    async def hit(self, key: str, limit: int, window: int) -> Quota:
        start = int(time.time() // window * window)
        redis_key = f"{self.prefix}:rl:{key}:{start}"
        loop = asyncio.get_running_loop()
        counted: asyncio.Future[int] = loop.create_future()
        waiting = self._waiting.setdefault(redis_key, [])
        waiting.append(counted)
        if len(waiting) == 1 and redis_key not in self._out:
            # After the callbacks already due this turn: their hits join.
            loop.call_soon(self._send, redis_key, start + window + 5)
        try:
            count = await counted
        except (RedisError, OSError) as exc:
            # Fail open: a Redis outage must not take the API down with it.
            # The outage shows in /healthz and in this counter.
            self.on_failure()
            log.warning('{"event":"rate_limit_unavailable","error":"%s"}', exc)
            return Quota(limit, limit, start + window, True)
        return _quota(count, limit, start + window)

    def _send(self, redis_key: str, expire_at: int) -> None:
        waiting = self._waiting.pop(redis_key, None)
        if waiting:
            # Kept here until done, which is also what marks the call as out.
            self._out[redis_key] = asyncio.create_task(
                self._count_all(redis_key, expire_at, waiting)
            )

    async def _count_all(
        self, redis_key: str, expire_at: int, waiting: list[asyncio.Future[int]]
    ) -> None:
        try:
            last = int(await self._count(keys=[redis_key], args=[expire_at, len(waiting)]))
        except Exception as exc:
            for counted in waiting:
                if not counted.done():
                    counted.set_exception(exc)
        except BaseException:  # cancelled (the process stopping): so are the hits
            del self._out[redis_key]
            for counted in [*waiting, *self._waiting.pop(redis_key, [])]:
                counted.cancel()
            raise
        else:
            first = last - len(waiting) + 1
            for n, counted in enumerate(waiting):
                if not counted.done():  # a request cancelled meanwhile still counted
                    counted.set_result(first + n)
        del self._out[redis_key]
        self._send(redis_key, expire_at)  # the hits that came while this call was out


async def count_socket_connect(
    services: Services, peer: str | None, forwarded_for: str | None
) -> None:
    """A socket connection attempt (Socket.IO or voice) against its address's
    budget (SOCKET_CONNECTS_PER_MINUTE), before any token is read."""
    settings = services.settings
    address = client_address(peer, forwarded_for, settings.trusted_proxies)
    quota = await services.limiter.hit(
        f"ip:{address}:socket", settings.socket_connects_per_minute, 60
    )
    if not quota.allowed:
        raise quota.refusal("Too many connection attempts; wait a moment")
