"""What a running hub holds: settings, pools and clients, made once per
process in `hub.app` and handed to every handler and worker."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol
from uuid import UUID

import redis.asyncio as aioredis
from aiohttp import web

from hub.auth import TokenVerifier
from hub.config import Settings
from hub.db import Database
from hub.events import EventBus
from hub.metrics import Metrics
from hub.ratelimit import Quota
from hub.store import companies


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: int, window: int) -> Quota: ...


@dataclass
class Services:
    settings: Settings
    db: Database
    verifier: TokenVerifier
    limiter: RateLimiter
    metrics: Metrics
    events: EventBus
    redis: aioredis.Redis | None = None
    _known_companies: set[UUID] = field(default_factory=set)

    async def known_company(self, company_id: UUID) -> None:
        """Make sure a company named by a valid token has its row (tokens from an
        external identity provider name companies the hub has never seen)."""
        if company_id in self._known_companies:
            return
        async with self.db.system() as conn:
            await companies.ensure(conn, company_id, name="Company")
        if len(self._known_companies) > 100_000:
            self._known_companies.clear()
        self._known_companies.add(company_id)


# Where the app keeps its Services (aiohttp's typed app key).
SERVICES = web.AppKey("services", Services)
