"""Migrations and row-level security, checked on the database itself."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from hub.db import connect
from hub.db.database import savepoint
from hub.db.migrate import migrate, migration_files
from tests.conftest import _with_database


async def test_migrations_run_concurrently_and_are_idempotent(postgres_server_url):
    name = f"syntera_migrate_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(postgres_server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = _with_database(postgres_server_url, name)
    try:
        conns = [await asyncpg.connect(url) for _ in range(3)]
        results = await asyncio.gather(*(migrate(c) for c in conns))
        applied = sorted(results, key=len)
        assert applied[:2] == [[], []]  # the other two found everything done
        assert applied[2] == [p.stem for p in migration_files()]
        assert await migrate(conns[0]) == []
        for conn in conns:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


async def test_every_tenant_table_is_under_forced_rls(database_url):
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            """SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
                      (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) AS policies
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = 'public' AND c.relkind = 'r'
                 AND (EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                              AND a.attname = 'company_id' AND NOT a.attisdropped)
                      OR c.relname = 'companies')"""
        )
        assert {r["relname"] for r in rows} >= {"companies", "users", "agents", "audit_log"}
        for row in rows:
            assert row["relrowsecurity"] and row["relforcerowsecurity"], row["relname"]
            assert row["policies"] >= 1, row["relname"]
        role = await conn.fetchrow(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = 'syntera_app'"
        )
        assert role is not None and not role["rolsuper"] and not role["rolbypassrls"]
    finally:
        await conn.close()


@pytest.fixture
async def db(base_settings):
    database = await connect(base_settings, max_size=2)
    yield database
    await database.close()


async def test_rls_holds_without_any_filter(db):
    async with db.system() as conn:
        a = await conn.fetchval("INSERT INTO companies (name) VALUES ('A') RETURNING id")
        b = await conn.fetchval("INSERT INTO companies (name) VALUES ('B') RETURNING id")
        for company in (a, a, b):
            await conn.execute(
                "INSERT INTO agents (company_id, name, model, temperature, max_tokens)"
                " VALUES ($1, 'agent', 'm', 0, 10)",
                company,
            )

    async with db.tenant(b) as conn:
        # No WHERE clause at all: row-level security alone confines the query.
        seen = await conn.fetch("SELECT company_id FROM agents")
        assert [r["company_id"] for r in seen] == [b]
        assert await conn.fetchval("SELECT count(*) FROM companies") == 1
        assert await conn.fetchval("SELECT current_user") == "syntera_app"
        updated = await conn.execute("UPDATE agents SET name = 'hijacked'")
        assert updated == "UPDATE 1"
        assert await conn.execute("DELETE FROM agents WHERE company_id = $1", a) == "DELETE 0"

    with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
        async with db.tenant(b) as conn:
            # Writing a row into another company is refused by the policy's check.
            await conn.execute(
                "INSERT INTO agents (company_id, name, model, temperature, max_tokens)"
                " VALUES ($1, 'x', 'm', 0, 10)",
                a,
            )

    async with db.system() as conn:
        names = await conn.fetch("SELECT name FROM agents WHERE company_id = $1", a)
        assert [r["name"] for r in names] == ["agent", "agent"]


async def test_tenant_settings_do_not_leak_between_transactions(db):
    async with db.system() as conn:
        company = await conn.fetchval("INSERT INTO companies (name) VALUES ('C') RETURNING id")
    async with db.tenant(company) as conn:
        assert await conn.fetchval("SELECT count(*) FROM companies") == 1
    # The same pooled connections, outside a tenant transaction: back to the owner role
    # and no company set.
    for _ in range(2):
        async with db.pool.acquire() as conn:
            assert await conn.fetchval("SELECT current_user") != "syntera_app"
            assert not await conn.fetchval("SELECT current_setting('app.company_id', true)")
    async with db.system() as conn:
        await conn.execute("SET LOCAL ROLE syntera_app")
        # A tenant role with no company set sees nothing at all.
        assert await conn.fetchval("SELECT count(*) FROM companies") == 0


async def test_a_session_setting_is_reset_on_commit_on_rollback_and_on_failed_commit(base_settings):
    """The helper sends the pool's session reset with COMMIT (one round trip);
    whichever way a transaction ends, the next user of the connection starts
    clean."""
    db = await connect(base_settings, max_size=1)  # one connection: the next acquire is it
    try:

        async def leftover() -> str | None:
            async with db.pool.acquire() as conn:
                return await conn.fetchval("SELECT current_setting('app.leftover', true)")

        async with db.system() as conn:
            await conn.execute("SELECT set_config('app.leftover', 'committed', false)")
        assert not await leftover()
        with pytest.raises(LookupError):
            async with db.system() as conn:
                await conn.execute("SELECT set_config('app.leftover', 'rolled back', false)")
                raise LookupError("the block fails")
        assert not await leftover()
        with pytest.raises(asyncpg.exceptions.ForeignKeyViolationError):
            async with db.system() as conn:
                await conn.execute("SELECT set_config('app.leftover', 'failed commit', false)")
                await conn.execute(
                    "CREATE TEMP TABLE parent (id int PRIMARY KEY);"
                    "CREATE TEMP TABLE child (id int REFERENCES parent"
                    " DEFERRABLE INITIALLY DEFERRED);"
                    "INSERT INTO child VALUES (1)"
                )
        assert not await leftover()
        async with db.system() as conn:  # and the connection still works
            assert await conn.fetchval("SELECT 1") == 1
    finally:
        await db.close()


async def test_a_savepoint_undoes_its_block_alone(db):
    async with db.system() as conn:
        company = await conn.fetchval("INSERT INTO companies (name) VALUES ('S') RETURNING id")
    add = "INSERT INTO contacts (id, company_id, first_name) VALUES ($1, $2, $3)"
    kept = uuid.uuid4()
    async with db.tenant(company) as conn:
        await conn.execute(add, kept, company, "kept")
        with pytest.raises(asyncpg.exceptions.UniqueViolationError):
            async with savepoint(conn):
                await conn.execute(add, uuid.uuid4(), company, "undone")
                await conn.execute(add, kept, company, "a second id")
        async with savepoint(conn):
            await conn.execute(add, uuid.uuid4(), company, "released")
    async with db.tenant(company) as conn:
        names = await conn.fetch("SELECT first_name FROM contacts ORDER BY first_name")
    assert [r["first_name"] for r in names] == ["kept", "released"]


async def _two_companies(db) -> tuple[uuid.UUID, uuid.UUID]:
    async with db.system() as conn:
        a = await conn.fetchval("INSERT INTO companies (name) VALUES ('A') RETURNING id")
        b = await conn.fetchval("INSERT INTO companies (name) VALUES ('B') RETURNING id")
    return a, b


async def _raw_session(db) -> tuple[str, str]:
    """Whom the pool's next connection is, as a bare acquire finds it."""
    async with db.pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT current_user AS role, current_setting('app.company_id', true) AS company"
        )
    return row["role"], row["company"] or ""


async def test_a_read_is_confined_to_its_company_on_a_connection_another_company_left(
    base_settings,
):
    """`Database.read` leaves its connection switched to its company (the next
    read for that company skips the switch); whoever uses the connection next
    — another company's read, a transaction, a system transaction, a bare
    session — sees what it is entitled to and no more."""
    db = await connect(base_settings, max_size=1)  # one connection: every use is the same one
    try:
        a, b = await _two_companies(db)
        for company in (a, a, b):
            async with db.system() as conn:
                await conn.execute(
                    "INSERT INTO agents (company_id, name, model, temperature, max_tokens)"
                    " VALUES ($1, 'agent', 'm', 0, 10)",
                    company,
                )
        for company, count in ((a, 2), (a, 2), (b, 1), (a, 2)):
            async with db.read(company) as conn:
                assert await conn.fetchval("SELECT count(*) FROM agents") == count
                assert await conn.fetchval("SELECT count(*) FROM companies") == 1
                assert not conn.is_in_transaction()
        assert await _raw_session(db) == ("syntera_app", str(a))  # left standing, as said
        async with db.tenant(b) as conn:
            assert await conn.fetchval("SELECT count(*) FROM agents") == 1
        assert (await _raw_session(db))[0] != "syntera_app"  # the commit reset it
        async with db.read(b) as conn:
            assert await conn.fetchval("SELECT count(*) FROM agents") == 1
        async with db.system() as conn:  # the owner again, not company b
            mine = "SELECT count(*) FROM agents WHERE company_id = ANY($1)"
            assert await conn.fetchval(mine, [a, b]) == 3
            assert not await conn.fetchval("SELECT current_setting('app.company_id', true)")
        async with db.read(a) as conn:
            pass
        async with db.system_read() as conn:  # a read as the owner leaves company a first
            assert await conn.fetchval(mine, [a, b]) == 3
            assert not conn.is_in_transaction()
        assert (await _raw_session(db))[0] != "syntera_app"
        async with db.read(a) as conn:
            pass
        async with db.session() as conn:
            assert await conn.fetchval(mine, [a, b]) == 3
            await conn.execute("SELECT pg_advisory_lock(42)")
        async with db.pool.acquire() as conn:  # the session's lock went with its release
            assert (
                await conn.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 42"
                )
                == 0
            )
        assert (await _raw_session(db))[0] != "syntera_app"
    finally:
        await db.close()


async def test_a_transaction_that_fails_after_leaving_a_read_session_leaves_the_owner(
    base_settings,
):
    """Leaving a read session goes in the same round trip as BEGIN, so a
    rollback undoes the leaving too: the release then resets the session."""
    db = await connect(base_settings, max_size=1)
    try:
        a, _ = await _two_companies(db)
        async with db.read(a) as conn:
            pass
        with pytest.raises(LookupError):
            async with db.system() as conn:
                assert await conn.fetchval("SELECT current_user") != "syntera_app"
                raise LookupError("the block fails")
        assert await _raw_session(db) != ("syntera_app", str(a))
        assert (await _raw_session(db))[0] != "syntera_app"
        # A read that opens a transaction and leaves it open is rolled back on release.
        async with db.read(a) as conn:
            await conn.execute("BEGIN")
        async with db.system() as conn:
            assert await conn.fetchval("SELECT current_user") != "syntera_app"
            assert await conn.fetchval("SELECT count(*) FROM companies") >= 2
    finally:
        await db.close()


def test_only_the_database_module_takes_connections_from_the_pool():
    """A pooled connection may still be in a company's read session: only the
    helpers of hub/db/database.py know, so nothing else acquires bare."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    offenders = [
        str(path.relative_to(root))
        for package in ("hub", "http_api", "agents_runtime")
        for path in (root / package).rglob("*.py")
        if "pool.acquire(" in path.read_text() and path.name != "database.py"
    ]
    assert offenders == []


async def test_a_tenant_query_may_run_in_parallel(db):
    """Row-level security's company check is parallel safe: PostgreSQL may
    give a tenant's large read parallel workers, as it would the owner's."""
    async with db.system() as conn:
        company = await conn.fetchval("INSERT INTO companies (name) VALUES ('P') RETURNING id")
    async with db.tenant(company) as conn:
        for setting in (
            "parallel_setup_cost",
            "parallel_tuple_cost",
            "min_parallel_table_scan_size",
            "min_parallel_index_scan_size",
        ):
            await conn.execute(f"SET LOCAL {setting} = 0")
        await conn.execute("SET LOCAL max_parallel_workers_per_gather = 2")
        plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN SELECT count(*) FROM messages"))
    assert "Gather" in plan, plan
