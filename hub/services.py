"""What a running hub holds: settings, pools and clients, made once per
process by `open_services` and handed to every handler and worker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis
from aiohttp import web

from hub.auth import Principal, TokenVerifier, invalid_token
from hub.config import Settings
from hub.db import Database, connect
from hub.db.migrate import migrate
from hub.events import EventBus, RedisEventBus
from hub.jobs import InProcessQueue, JobQueue, QueuePolicy, RedisStreamQueue
from hub.knowledge import KnowledgeService
from hub.loops import Loops
from hub.metrics import Metrics
from hub.ratelimit import MemoryRateLimiter, Quota, RedisRateLimiter
from hub.store import companies
from hub.workflows import WorkflowService, keep_trigger_events


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
    jobs: JobQueue
    loops: Loops  # the process's background loops and how they fare (hub.loops)
    redis: aioredis.Redis | None = None
    knowledge: KnowledgeService | None = None  # set by the runtime (agents_runtime.knowledge)
    workflows: WorkflowService | None = None  # set by the runtime (agents_runtime.workflows)

    async def authenticate(self, token: str) -> Principal:
        """A staff token, verified, then held against the hub's records on every
        use: a signature proves who minted a token, not that its claims still
        hold. A user of the hub belongs to one company, and a token of a deleted
        user is dead. A company first named by an identity provider's token
        gets its row."""
        principal = await self.verifier.verify(token)
        async with self.db.system() as conn:
            user_company, company_exists = await companies.standing(
                conn, principal.user_id, principal.company_id
            )
            if user_company is not None and user_company != principal.company_id:
                raise invalid_token("the user belongs to another company")
            if user_company is None and principal.hub_user:
                raise invalid_token("the user no longer exists")
            if not company_exists:
                await companies.ensure(conn, principal.company_id, name="Company")
        return principal


# Where the app keeps its Services (aiohttp's typed app key).
SERVICES = web.AppKey("services", Services)


async def open_services(settings: Settings, *, run_migrations: bool = True) -> Services:
    settings = settings.ensure_jwt_secret()
    db = await connect(settings)
    if run_migrations:
        async with db.pool.acquire() as conn:
            await migrate(conn)
    metrics = Metrics()
    redis = None
    if settings.redis_url:
        redis = aioredis.from_url(
            settings.redis_url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30
        )
        limiter = RedisRateLimiter(
            redis, settings.redis_prefix, metrics.rate_limit_backend_errors.inc
        )
        events: EventBus = RedisEventBus(redis, settings.redis_url, settings.redis_prefix)
    else:
        limiter = MemoryRateLimiter()
        events = EventBus()
    metrics.watch_event_bus(events)
    await events.start()
    db.events = events
    policy = QueuePolicy(
        concurrency=settings.job_concurrency,
        per_company=min(settings.job_concurrency_per_company, settings.job_concurrency),
    )
    jobs: JobQueue = (
        RedisStreamQueue(
            redis, settings.redis_prefix, policy, lease_ms=settings.job_lease_seconds * 1000
        )
        if redis is not None
        else InProcessQueue(policy)
    )
    # Events that start workflows: an outbox.
    db.event_hooks.append(keep_trigger_events(jobs, metrics.job_enqueue_failures))
    return Services(
        settings=settings,
        db=db,
        verifier=TokenVerifier(settings),
        limiter=limiter,
        metrics=metrics,
        events=events,
        jobs=jobs,
        loops=Loops(metrics.background_failures),
        redis=redis,
    )


async def close_services(services: Services) -> None:
    await services.jobs.stop()
    await services.events.stop()
    if services.redis is not None:
        await services.redis.aclose()
    await services.db.close()
