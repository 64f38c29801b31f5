"""How many voice sessions may run at once: per process (they run in the
process the socket reached, and each costs CPU for its speech) and per company
(across every process: a Redis sorted set of session leases when Redis is
configured, a counter in this process otherwise).

A lease expires unless renewed, so a process that dies does not hold its
sessions' slots forever. A lease is named by what the session serves (a
conversation), so one conversation has one voice session at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from uuid import UUID

import redis.asyncio as aioredis

LEASE_SECONDS = 60
RENEW_SECONDS = 20

# KEYS[1] the company's set; ARGV: now, cap, session id, lease expiry.
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[3]) then return -1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[3])
redis.call('EXPIRE', KEYS[1], 3600)
return 1
"""
# KEYS[1] the company's set; ARGV: session id, lease expiry. Re-adds a lease
# that lapsed (a long stall) rather than let the session run uncounted.
_RENEW = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], 3600)
return 1
"""


@dataclass(frozen=True)
class Refusal:
    status: int
    code: str
    message: str


class VoiceSlots:
    def __init__(
        self,
        per_company: int,
        per_process: int,
        redis: aioredis.Redis | None = None,
        prefix: str = "syntera",
    ) -> None:
        self.per_company, self.per_process = per_company, per_process
        self.redis, self.prefix = redis, prefix
        self.running = 0
        self._local: dict[UUID, set[str]] = defaultdict(set)

    @contextlib.asynccontextmanager
    async def hold(self, company_id: UUID, session: str) -> AsyncIterator[Refusal | None]:
        """Yields None with a slot held for the block, or why there is none.
        `session` names what the session serves: one at a time for each."""
        if self.running >= self.per_process:
            yield Refusal(
                429,
                "VOICE_BUSY",
                "This server runs as many voice sessions as it can; try again soon",
            )
            return
        self.running += 1  # taken before any await, so that handshakes cannot overshoot
        try:
            acquired = await self._acquire(company_id, session)
        except BaseException:
            self.running -= 1
            raise
        if acquired != 1:
            self.running -= 1
            if acquired == -1:
                yield Refusal(409, "VOICE_SESSION_OPEN", "This conversation is already in a call")
            else:
                yield Refusal(
                    429,
                    "VOICE_SESSIONS_LIMIT",
                    f"This company already has {self.per_company} voice sessions running",
                )
            return
        renew = asyncio.create_task(self._renew(company_id, session)) if self.redis else None
        try:
            yield None
        finally:
            self.running -= 1
            if renew is not None:
                renew.cancel()
            await self._release(company_id, session)

    def _key(self, company_id: UUID) -> str:
        return f"{self.prefix}:voice-sessions:{company_id}"

    async def _acquire(self, company_id: UUID, session: str) -> int:
        """1: acquired; 0: the company is at its cap; -1: `session` runs already."""
        if self.redis is None:
            held = self._local[company_id]
            if session in held:
                return -1
            if len(held) >= self.per_company:
                return 0
            held.add(session)
            return 1
        now = time.time()
        return int(
            await self.redis.eval(
                _ACQUIRE,
                1,
                self._key(company_id),
                now,
                self.per_company,
                session,
                now + LEASE_SECONDS,
            )
        )

    async def _renew(self, company_id: UUID, session: str) -> None:
        assert self.redis is not None
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            # A missed renewal is retried; the lease outlasts two.
            with contextlib.suppress(Exception):
                await self.redis.eval(
                    _RENEW, 1, self._key(company_id), session, time.time() + LEASE_SECONDS
                )

    async def _release(self, company_id: UUID, session: str) -> None:
        if self.redis is None:
            self._local[company_id].discard(session)
            if not self._local[company_id]:
                del self._local[company_id]
            return
        with contextlib.suppress(Exception):  # the lease expires on its own
            await self.redis.zrem(self._key(company_id), session)
