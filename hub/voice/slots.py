"""How many voice sessions may run at once: per process (they run in the
process the socket reached, and each costs CPU for its speech) and per company
(across every process: a Redis sorted set of session leases when Redis is
configured, a counter in this process otherwise).

A lease expires unless renewed, so a process that dies does not hold its
sessions' slots forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from uuid import UUID

import redis.asyncio as aioredis

LEASE_SECONDS = 60
RENEW_SECONDS = 20

# KEYS[1] the company's set; ARGV: now, cap, session id, lease expiry.
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[3])
redis.call('EXPIRE', KEYS[1], 3600)
return 1
"""


@dataclass(frozen=True)
class Refusal:
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
        self._local: Counter[UUID] = Counter()

    @contextlib.asynccontextmanager
    async def hold(self, company_id: UUID) -> AsyncIterator[Refusal | None]:
        """Yields None with a slot held for the block, or why there is none."""
        if self.running >= self.per_process:
            yield Refusal(
                "VOICE_BUSY", "This server runs as many voice sessions as it can; try again soon"
            )
            return
        session = uuid.uuid4().hex
        if not await self._acquire(company_id, session):
            yield Refusal(
                "VOICE_SESSIONS_LIMIT",
                f"This company already has {self.per_company} voice sessions running",
            )
            return
        self.running += 1
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

    async def _acquire(self, company_id: UUID, session: str) -> bool:
        if self.redis is None:
            if self._local[company_id] >= self.per_company:
                return False
            self._local[company_id] += 1
            return True
        now = time.time()
        return bool(
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
            with contextlib.suppress(
                Exception
            ):  # a missed renewal is retried; the lease outlasts two
                await self.redis.zadd(
                    self._key(company_id), {session: time.time() + LEASE_SECONDS}, xx=True
                )

    async def _release(self, company_id: UUID, session: str) -> None:
        if self.redis is None:
            self._local[company_id] -= 1
            if self._local[company_id] <= 0:
                del self._local[company_id]
            return
        with contextlib.suppress(Exception):  # the lease expires on its own
            await self.redis.zrem(self._key(company_id), session)
