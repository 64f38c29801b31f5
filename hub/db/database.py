"""The pool and the transaction helper.

Every query runs on a connection handed out here. A tenant transaction
switches to the `syntera_app` role, which row-level security applies to, and
sets `app.company_id`: a query that forgets its company filter still sees only
that company's rows. A system transaction (sign-up, log-in, cross-tenant jobs)
runs as the connecting role and is used by name, never by default. A tenant
read (`Database.read`) is the same confinement without a transaction, for
reads of one statement; `Database.session` is a bare connection as the
owner, outside any transaction (migrations, VACUUM).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
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


# A connection's session is in a state its helper cannot vouch for (a block
# failed, or `Database.session` lent it bare): its release resets it whole.
UNKNOWN = "unknown"


class HubConnection(asyncpg.Connection):
    """A pooled connection that knows whose its session is between uses:
    `None`, the owner with nothing of ours set (a new connection, or one
    whose last transaction committed with the reset); a company id, when
    `Database.read` left it switched to that company at session level, so
    that the next read for the same company goes straight to its query; or
    `UNKNOWN`. Only the helpers here change it."""

    _session: UUID | str | None = None

    def session_state(self) -> UUID | str | None:
        return self._session

    def set_session_state(self, state: UUID | str | None) -> None:
        self._session = state

    def get_reset_query(self) -> str:
        # RESET ALL leaves the role as it is; a read session switched it.
        return super().get_reset_query() + "\nRESET ROLE;"


async def _reset_on_release(conn: HubConnection) -> None:
    # Nothing to send when the helper left the session in a state it knows
    # (its transaction's COMMIT carried the reset, or a read's switch stands
    # for the next read); otherwise what asyncpg's release does by default —
    # roll back, RESET ALL, UNLISTEN *, advisory locks, cursors — and the role.
    if conn.session_state() is not UNKNOWN:
        return
    await conn.reset()
    conn.set_session_state(None)


_savepoints = itertools.count()


@asynccontextmanager
async def savepoint(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """Inside a transaction of `Database`: what runs in the block is undone
    alone when it raises, and the transaction goes on. (asyncpg's nested
    `conn.transaction()` refuses to run inside a transaction it did not
    begin, which the helper's are: it begins them with the tenant settings
    in one round trip.)"""
    name = f"hub_savepoint_{next(_savepoints)}"
    await conn.execute(f"SAVEPOINT {name}")
    try:
        yield
    except BaseException:
        await conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
        raise
    await conn.execute(f"RELEASE SAVEPOINT {name}")


def _begin(company_id: UUID | None) -> str:
    if company_id is None:
        return "BEGIN"
    # Literals, so that BEGIN and both settings go in one simple query (one
    # round trip; bound parameters would need one statement, hence two). A
    # UUID's text is hex digits and dashes only, and the role is ours.
    return (
        f"BEGIN; SELECT set_config('role', '{APP_ROLE}', true),"
        f" set_config('app.company_id', '{UUID(str(company_id))}', true)"
    )


# A read session's switch, at session level (no transaction to be local to).
def _switch_session(company_id: UUID) -> str:
    return (
        f"SELECT set_config('role', '{APP_ROLE}', false),"
        f" set_config('app.company_id', '{UUID(str(company_id))}', false)"
    )


# Back to the owner from a read session, ahead of a transaction's BEGIN.
_LEAVE_SESSION = "RESET ROLE; RESET app.company_id; "


class Database:
    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        self.pool = pool
        self.url = url
        self.events: EventBus | None = None  # attached by the app; CLI commands have none
        # Called as each event is published in a transaction (hub.workflows keeps
        # an outbox of the events that start workflows, in that transaction).
        self.event_hooks: list[Callable[[Database, asyncpg.Connection, Event], None]] = []
        self._before_commit: dict[int, list[Callable[[], Awaitable[None]]]] = {}
        self._after_commit: dict[int, list[Callable[[], Awaitable[None]]]] = {}

    async def _acquire(self) -> HubConnection:
        try:
            # asyncio.timeout, not acquire(timeout=): asyncpg's wraps each
            # acquire in a task of its own (asyncio.wait_for), per transaction.
            async with asyncio.timeout(10):
                return await self.pool.acquire()
        except CONNECTION_ERRORS as exc:
            raise database_unavailable() from exc

    @asynccontextmanager
    async def _transaction(self, company_id: UUID | None) -> AsyncIterator[asyncpg.Connection]:
        conn = await self._acquire()
        pending = self._after_commit[id(conn)] = []
        last_writes = self._before_commit[id(conn)] = []
        # A read session is left first, in the same round trip as BEGIN.
        leave = _LEAVE_SESSION if conn.session_state() is not None else ""
        # Until the COMMIT below: a rollback would also undo `leave`.
        conn.set_session_state(UNKNOWN)
        try:
            try:
                await conn.execute(leave + _begin(company_id))
                yield conn
                for callback in last_writes:
                    await callback()
                # The session reset the pool would send on release, and the
                # commit, in one round trip. The commit comes last: if the
                # connection dies before it, nothing was committed. (Were it
                # first, a shutdown arriving while COMMIT waits for its WAL
                # flush would end the query in the reset, after the commit,
                # and a committed transaction would be reported as failed.)
                await conn.execute(conn.get_reset_query() + "\nCOMMIT;")
                conn.set_session_state(None)
            except BaseException:
                # A broken connection cannot roll back; the pool's release
                # then closes it, which ends the transaction just the same.
                with contextlib.suppress(Exception):
                    await conn.execute("ROLLBACK")
                raise
        finally:
            del self._after_commit[id(conn)]
            del self._before_commit[id(conn)]
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

    def read(self, company_id: UUID) -> AsyncIterator[asyncpg.Connection]:
        """One company's rows, as `tenant` confines them, without a
        transaction: each statement is its own, with its own snapshot. For
        reads of one statement (or of several that need no common snapshot),
        where BEGIN and COMMIT would be two more round trips. The switch to
        the company is made at session level and left standing, so that the
        next read for the same company on this connection is its queries
        alone; a transaction, or a read as another, leaves it first."""
        if company_id is None:
            raise ValueError("a tenant read needs a company id")
        return self._read(company_id)

    def system_read(self) -> AsyncIterator[asyncpg.Connection]:
        """`read` as the owning role: a read that precedes the tenant (a
        publishable key by its hash)."""
        return self._read(None)

    @asynccontextmanager
    async def _read(self, company_id: UUID | None) -> AsyncIterator[asyncpg.Connection]:
        conn = await self._acquire()
        try:
            if conn.session_state() != company_id:
                conn.set_session_state(UNKNOWN)  # until the switch is known to have run
                await conn.execute(
                    _LEAVE_SESSION if company_id is None else _switch_session(company_id)
                )
                conn.set_session_state(company_id)
            yield conn
        finally:
            if conn.is_in_transaction():  # not what a read is for: undone on release
                conn.set_session_state(UNKNOWN)
            await self.pool.release(conn)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection as the owner, outside any transaction, for what cannot
        run in one or holds a session-level lock (migrations, VACUUM). Reset
        whole on release, whatever it was used for. (Its callers run at start
        or from the command line: a database error reaches them as it is.)"""
        conn = await self.pool.acquire()
        try:
            left_read = conn.session_state() is not None
            conn.set_session_state(UNKNOWN)
            if left_read:
                await conn.execute(_LEAVE_SESSION)
            yield conn
        finally:
            await self.pool.release(conn)

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
    pool = await asyncpg.create_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        connection_class=HubConnection,
        reset=_reset_on_release,
        command_timeout=30,
        max_inactive_connection_lifetime=300,
    )
    return Database(pool, url)
