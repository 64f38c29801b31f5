"""The pool and the transaction helper.

Every query runs in a transaction opened here. A tenant transaction switches
to the `syntera_app` role, which row-level security applies to, and sets
`app.company_id`: a query that forgets its company filter still sees only
that company's rows. A system transaction (sign-up, log-in, migrations,
cross-tenant jobs) runs as the connecting role and is used by name, never by
default.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from uuid import UUID

import asyncpg

from hub import jsoncodec
from hub.config import Settings
from hub.db.embedded import embedded_database_url
from hub.errors import ApiError
from hub.events import Event, EventBus

APP_ROLE = "syntera_app"

# What asyncpg raises when the server is gone or refusing; the HTTP layer turns
# these into a fast 503 instead of a hanging request or a 500.
CONNECTION_ERRORS = (
    OSError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.InterfaceError,
    TimeoutError,
)


def database_unavailable() -> ApiError:
    return ApiError.unavailable("The database is unavailable", "DATABASE_UNAVAILABLE")


async def _init_connection(conn: asyncpg.Connection) -> None:
    # Binary codecs, so that COPY (hub seed) works too: jsonb's binary form is
    # a version byte followed by the JSON text; json's is the text itself.
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda value: b"\x01" + jsoncodec.dumps(value),
        decoder=lambda data: jsoncodec.loads(data[1:]),
        schema="pg_catalog",
        format="binary",
    )
    await conn.set_type_codec(
        "json",
        encoder=jsoncodec.dumps,
        decoder=jsoncodec.loads,
        schema="pg_catalog",
        format="binary",
    )


class _Reset:
    """What the pool does to a connection given back: asyncpg's default sends
    a reset query (`pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET
    ALL`), one more round trip after every transaction, which profiled as a
    tenth of a web process's CPU under load. A connection the transaction
    helper gives back needs none: all it set was `SET LOCAL` (gone at commit
    or rollback), its cursors closed with the transaction, and nothing it
    runs listens or takes a session lock. Any other use of the pool
    (`pool.acquire()`: migrations, seeding) still gets the full reset."""

    def __init__(self) -> None:
        # Server pids of connections the helper gives back, their transaction
        # ended (the pool hands the reset the connection, not the proxy the
        # helper held: the pid names both).
        self.settled: set[int] = set()

    async def __call__(self, conn: asyncpg.Connection) -> None:
        pid = conn.get_server_pid()
        if pid in self.settled:
            self.settled.discard(pid)
            return
        await conn.execute(conn.get_reset_query())


class Database:
    def __init__(self, pool: asyncpg.Pool, url: str, reset: _Reset | None = None) -> None:
        self.pool = pool
        self.url = url
        self._reset = reset
        self.events: EventBus | None = None  # attached by the app; CLI commands have none
        # Called as each event is published in a transaction (hub.workflows keeps
        # an outbox of the events that start workflows, in that transaction).
        self.event_hooks: list[Callable[[Database, asyncpg.Connection, Event], None]] = []
        self._before_commit: dict[int, list[Callable[[], Awaitable[None]]]] = {}
        self._after_commit: dict[int, list[Callable[[], Awaitable[None]]]] = {}

    @asynccontextmanager
    async def _transaction(self, company_id: UUID | None) -> AsyncIterator[asyncpg.Connection]:
        try:
            conn = await self.pool.acquire(timeout=10)
        except CONNECTION_ERRORS as exc:
            raise database_unavailable() from exc
        pending = self._after_commit[id(conn)] = []
        last_writes = self._before_commit[id(conn)] = []
        try:
            async with conn.transaction():
                if company_id is not None:
                    # One round trip: SET LOCAL ROLE and SET LOCAL app.company_id.
                    await conn.execute(
                        "SELECT set_config('role', $1, true),"
                        " set_config('app.company_id', $2, true)",
                        APP_ROLE,
                        str(company_id),
                    )
                yield conn
                for callback in last_writes:
                    await callback()
        finally:
            del self._after_commit[id(conn)]
            del self._before_commit[id(conn)]
            if self._reset is not None and not conn.is_closed() and not conn.is_in_transaction():
                self._reset.settled.add(conn.get_server_pid())  # committed or rolled back
            await self.pool.release(conn)
        # Reached only when the transaction committed: nobody hears of a change
        # that was rolled back.
        for callback in pending:
            await callback()

    def after_commit(
        self, conn: asyncpg.Connection, callback: Callable[[], Awaitable[None]]
    ) -> None:
        """Run `callback` once the transaction `conn` belongs to has committed."""
        self._after_commit[id(conn)].append(callback)

    def before_commit(
        self, conn: asyncpg.Connection, callback: Callable[[], Awaitable[None]]
    ) -> None:
        """Run `callback` in the transaction `conn` belongs to, as its last work."""
        self._before_commit[id(conn)].append(callback)

    def publish_after_commit(self, conn: asyncpg.Connection, event: Event) -> None:
        """Publish `event` once the transaction `conn` belongs to has committed."""
        if self.events is not None:
            self.after_commit(conn, lambda bus=self.events: bus.publish(event))
        for hook in self.event_hooks:
            hook(self, conn, event)

    def tenant(self, company_id: UUID) -> AsyncIterator[asyncpg.Connection]:
        """A transaction confined by row-level security to one company."""
        if company_id is None:
            raise ValueError("a tenant transaction needs a company id")
        return self._transaction(company_id)

    def system(self) -> AsyncIterator[asyncpg.Connection]:
        """A transaction as the owning role: for work that precedes or spans tenants."""
        return self._transaction(None)

    async def ping(self) -> None:
        async with self.pool.acquire(timeout=3) as conn:
            await conn.fetchval("SELECT 1", timeout=3)

    async def close(self) -> None:
        await self.pool.close()


def database_url(settings: Settings) -> str:
    if settings.database_url:
        return settings.database_url
    return embedded_database_url(settings.data_dir)


async def connect(settings: Settings, *, min_size: int = 1, max_size: int = 10) -> Database:
    url = database_url(settings)
    reset = _Reset()
    pool = await asyncpg.create_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=reset,
        command_timeout=30,
        max_inactive_connection_lifetime=300,
    )
    return Database(pool, url, reset)
