"""What a running hub holds: settings, pools and clients, and the runtime's
knowledge base and workflow engine, all made once per process by
`open_services` before the process serves, and handed to every handler and
worker."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Protocol

from aiohttp import web

from hub import redis_client
from hub.auth import Identity, Principal, TokenVerifier, invalid_token
from hub.config import Settings
from hub.db import Database, connect
from hub.db.auth_changes import AuthChanges
from hub.db.migrate import migrate
from hub.events import EventBus, RedisEventBus
from hub.jobs import InProcessQueue, JobQueue, QueuePolicy, RedisStreamQueue
from hub.knowledge import KnowledgeService
from hub.loops import Loops
from hub.metrics import Metrics
from hub.ratelimit import MemoryRateLimiter, Quota, RedisRateLimiter
from hub.store import companies, users
from hub.tokencache import TokenCache
from hub.workflows import WorkflowService, keep_trigger_events


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: int, window: int) -> Quota: ...


@dataclass
class Core:
    """What every part of a process is built on."""

    settings: Settings
    db: Database
    verifier: TokenVerifier
    limiter: RateLimiter
    metrics: Metrics
    events: EventBus
    jobs: JobQueue
    loops: Loops  # the process's background loops and how they fare (hub.loops)
    redis: redis_client.Client | None  # a cluster client on a Redis Cluster
    tokens: TokenCache  # recent checks, dropped as what they read changes
    auth_changes: AuthChanges  # hears those changes for `tokens`

    async def authenticate(self, token: str) -> Principal:
        """A staff token, verified, then held against the hub's records on every
        use: a signature proves who minted a token, not that its claims still
        hold. A token that names no company (Supabase's) is placed by the
        users table: its `sub` is a hub user's id or the external id linked to
        one, whose company and role count. A user of the hub belongs to one
        company, and a token of a deleted user is dead. A company first named
        by an identity provider's token gets its row.

        What a check found is kept a few seconds (hub/tokencache.py), and
        dropped the moment the users or companies it read change."""
        cached = self.tokens.get(token)
        if cached is not None:
            return cached
        generation = self.tokens.generation
        identity = await self.verifier.verify(token)
        principal = await self._standing(identity)
        self.tokens.put(token, identity, principal, generation)
        return principal

    async def _standing(self, identity: Identity) -> Principal:
        async with self.db.system() as conn:
            user, company_exists = await users.standing(conn, identity.subject, identity.company_id)
            if identity.company_id is None:
                if user is None:
                    raise invalid_token(
                        "no user of this hub has this sub (an owner can invite the email)"
                    )
                return Principal(
                    user["id"], user["company_id"], user["role"], user["email"], hub_user=True
                )
            if user is not None and user["company_id"] != identity.company_id:
                raise invalid_token("the user belongs to another company")
            if user is None and identity.hub_user:
                raise invalid_token("the user no longer exists")
            if not company_exists:
                await companies.ensure(conn, identity.company_id, name="Company")
        return Principal(
            user["id"] if user else identity.subject,
            identity.company_id,
            identity.role,
            identity.email,
            hub_user=identity.hub_user,
        )


@dataclass
class Services(Core):
    """The core and the runtime's parts built on it."""

    knowledge: KnowledgeService
    workflows: WorkflowService


# What the runtime builds on the core (agents_runtime.runtime.parts): hub
# never imports the runtime, so whoever opens the services hands it in.
Parts = Callable[[Core], tuple[KnowledgeService, WorkflowService]]

# Where the app keeps its Services (aiohttp's typed app key).
SERVICES = web.AppKey("services", Services)


async def open_services(
    settings: Settings, parts: Parts, *, run_migrations: bool = True
) -> Services:
    settings = settings.ensure_jwt_secret()
    db = await connect(settings)
    if run_migrations:
        async with db.session() as conn:
            await migrate(conn)
    metrics = Metrics()
    redis = None
    if settings.redis_url:
        redis = await redis_client.connect(settings.redis_url)
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
    tokens = TokenCache(ttl=settings.token_cache_seconds)
    auth_changes = AuthChanges(db.url, tokens)
    await auth_changes.start()
    core = Core(
        settings=settings,
        db=db,
        verifier=TokenVerifier(settings),
        limiter=limiter,
        metrics=metrics,
        events=events,
        jobs=jobs,
        loops=Loops(metrics.background_failures),
        redis=redis,
        tokens=tokens,
        auth_changes=auth_changes,
    )
    knowledge, workflows = parts(core)
    shared = {field.name: getattr(core, field.name) for field in fields(Core)}
    return Services(**shared, knowledge=knowledge, workflows=workflows)


async def close_services(services: Services) -> None:
    await services.jobs.stop()  # lets running jobs finish
    await services.workflows.close()
    services.knowledge.close()
    await services.events.stop()
    await services.auth_changes.stop()
    if services.redis is not None:
        await services.redis.aclose()
    await services.db.close()
