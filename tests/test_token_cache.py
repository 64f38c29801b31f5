"""The cache of staff-token checks (hub/tokencache.py): what it keeps and for
how long, and that every change to what a check read — a user deleted, a
role changed, a sub linked by invitation, a company deleted — reaches every
process at once, whoever makes it (PostgreSQL's notices, hub/db/auth_changes.py)."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import tempfile
import uuid
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from bench.shipped import Served
from hub.auth import Identity, Principal
from hub.services import SERVICES
from hub.tokencache import TokenCache
from tests.helpers import assert_error, signup, wait_for
from tests.supabase import supabase_token

COMPANY, OTHER = uuid.uuid4(), uuid.uuid4()


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def check(user: uuid.UUID | None = None, company: uuid.UUID = COMPANY, expires=None):
    user = user or uuid.uuid4()
    identity = Identity(user, company, "owner", expires_at=expires)
    return identity, Principal(user, company, "owner")


def listening_cache(**kwargs) -> TokenCache:
    cache = TokenCache(**kwargs)
    cache.listening = True
    return cache


def test_a_check_is_kept_for_its_ttl_and_never_past_the_tokens_expiry():
    clock = Clock()
    cache = listening_cache(ttl=5, clock=clock)
    identity, principal = check()
    cache.put("t", identity, principal, cache.generation)
    clock.now += 4.9
    assert cache.get("t") == principal
    clock.now += 0.1
    assert cache.get("t") is None and len(cache) == 0

    identity, principal = check(expires=clock.now + 2)
    cache.put("short", identity, principal, cache.generation)
    clock.now += 1.9
    assert cache.get("short") == principal
    clock.now += 0.1
    assert cache.get("short") is None


def test_the_oldest_check_goes_when_the_cache_is_full():
    cache = listening_cache(size=3)
    for n in range(4):
        cache.put(f"t{n}", *check(), cache.generation)
    assert len(cache) == 3
    assert cache.get("t0") is None and all(cache.get(f"t{n}") for n in (1, 2, 3))


def test_forget_drops_the_checks_of_a_user_a_linked_sub_or_a_company():
    cache = listening_cache()
    user, sub = uuid.uuid4(), uuid.uuid4()
    cache.put("by-id", *check(user), cache.generation)
    # An identity provider's sub placed by the users table as the hub user `user`.
    cache.put("by-sub", Identity(sub, None, "member"), Principal(user, COMPANY, "member"), 0)
    cache.put("other-user", *check(), cache.generation)
    cache.put("other-company", *check(company=OTHER), cache.generation)
    cache.forget([user])
    assert cache.get("by-id") is None and cache.get("by-sub") is None
    assert cache.get("other-user") and cache.get("other-company")
    cache.forget([sub], company_id=OTHER)
    assert cache.get("other-company") is None and cache.get("other-user")


def test_a_check_that_read_the_tables_before_a_change_is_not_kept():
    cache = listening_cache()
    began = cache.generation
    cache.forget([uuid.uuid4()])  # heard while the check was reading
    cache.put("t", *check(), began)
    assert cache.get("t") is None
    cache.put("t", *check(), cache.generation)
    assert cache.get("t") is not None


def test_nothing_is_kept_while_changes_cannot_be_heard():
    cache = TokenCache()
    assert not cache.listening
    cache.put("t", *check(), cache.generation)
    assert cache.get("t") is None


async def _sql(database_url: str, query: str, *args) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.execute(query, *args)
    finally:
        await conn.close()


@pytest.fixture
async def two_processes(make_client, redis_url):
    """Two hubs on one database and one Redis bus, as two `web` processes are."""
    prefix = f"tokens-{uuid.uuid4().hex[:8]}"
    # Far longer than a test: only a change's notice can explain a refusal.
    options = {"redis_url": redis_url, "redis_prefix": prefix, "token_cache_seconds": 300}
    first = await make_client(**options)
    second = await make_client(**options)
    return first, second


async def statuses(hubs, method: str, path: str, headers: dict) -> list[int]:
    return [(await hub.request(method, path, headers=headers)).status for hub in hubs]


async def dropped(hubs, *headers: dict) -> None:
    """Until no hub keeps these tokens' checks. PostgreSQL sends its notice as
    the change commits; the commit's own reply can still reach the writer a
    moment before a listening process has read the notice."""

    async def gone() -> bool:
        return not any(cached(hub, h) for hub in hubs for h in headers)

    await wait_for(gone, within=10, every=0.01)


def tokens(hub) -> TokenCache:
    return hub.server.app[SERVICES].tokens


def cached(hub, headers: dict) -> bool:
    token = headers["Authorization"].removeprefix("Bearer ")
    return hub.server.app[SERVICES].tokens.get(token) is not None


async def test_a_deleted_user_or_company_is_refused_at_once_on_every_process(
    two_processes, database_url
):
    hubs = two_processes
    gone_user, gone_company, staying = [await signup(hubs[0]) for _ in range(3)]
    for account in (gone_user, gone_company, staying):
        assert await statuses(hubs, "GET", "/api/agents", account.headers) == [200, 200]
        # Both processes keep the check, so what follows is the cache's doing.
        assert all(cached(hub, account.headers) for hub in hubs)

    await _sql(database_url, "DELETE FROM users WHERE id = $1", uuid.UUID(gone_user.user_id))
    await dropped(hubs, gone_user.headers)
    await _sql(
        database_url, "DELETE FROM companies WHERE id = $1", uuid.UUID(gone_company.company_id)
    )
    await dropped(hubs, gone_company.headers)
    for account in (gone_user, gone_company):
        for hub in hubs:
            response = await hub.get("/api/agents", headers=account.headers)
            assert response.status == 401, await response.text()
            assert_error(await response.json(), "INVALID_TOKEN")
    # Only what changed was dropped.
    assert all(cached(hub, staying.headers) for hub in hubs)


async def test_a_role_change_and_a_linked_sub_apply_at_once_on_every_process(
    two_processes, database_url, base_settings
):
    hubs = two_processes
    secret = base_settings.ensure_jwt_secret().jwt_secret
    owner = await signup(hubs[0])
    sub, email = str(uuid.uuid4()), f"linked-{uuid.uuid4().hex[:8]}@example.com"
    response = await hubs[0].post(
        "/api/invitations",
        json={"email": email, "role": "member"},
        headers=owner.headers,
    )
    invitation = await response.json()
    linked = {"Authorization": "Bearer " + supabase_token(secret, sub, email)}
    # The same sub's token naming another company is, until the link, a user
    # of that company (the token is the record).
    elsewhere = await signup(hubs[0])
    naming = {
        "Authorization": "Bearer "
        + supabase_token(
            secret, sub, email, app_metadata={"company_id": elsewhere.company_id, "role": "owner"}
        )
    }
    assert await statuses(hubs, "GET", "/api/agents", naming) == [200, 200]
    assert all(cached(hub, naming) for hub in hubs)

    response = await hubs[0].post(
        "/api/invitations/link", json={"token": invitation["token"]}, headers=linked
    )
    assert response.status == 201, await response.text()
    user_id = (await response.json())["user"]["id"]
    await dropped(hubs, naming)
    for hub in hubs:  # the sub now belongs to the inviting company
        response = await hub.get("/api/agents", headers=naming)
        assert response.status == 401, await response.text()
        assert "another company" in (await response.json())["error"]

    # A linked sub's role is the users table's: a member may not read the audit log.
    assert await statuses(hubs, "GET", "/api/audit-log", linked) == [403, 403]
    assert all(cached(hub, linked) for hub in hubs)
    await _sql(database_url, "UPDATE users SET role = 'admin' WHERE id = $1", uuid.UUID(user_id))
    await dropped(hubs, linked)
    assert await statuses(hubs, "GET", "/api/audit-log", linked) == [200, 200]


async def test_a_revoked_key_is_refused_at_once_on_every_process(two_processes):
    hubs = two_processes
    owner = await signup(hubs[0])
    agent = await (
        await hubs[0].post("/api/agents", json={"name": "K"}, headers=owner.headers)
    ).json()
    created = await hubs[0].post(
        f"/api/agents/{agent['id']}/keys", json={"allowed_origins": ["*"]}, headers=owner.headers
    )
    key = await created.json()
    visitor = {"Authorization": f"Bearer {key['key']}"}
    path, body = "/public/conversations", {"agent_id": agent["id"]}
    for hub in hubs:
        assert (await hub.post(path, json=body, headers=visitor)).status == 201
    revoked = await hubs[0].delete(
        f"/api/agents/{agent['id']}/keys/{key['id']}", headers=owner.headers
    )
    assert revoked.status == 200, await revoked.text()
    for hub in hubs:
        response = await hub.post(path, json=body, headers=visitor)
        assert response.status == 401
        assert_error(await response.json(), "INVALID_KEY")


async def test_a_lost_listening_connection_empties_the_cache_until_it_listens_again(
    make_client, database_url
):
    hub = await make_client(token_cache_seconds=300)
    services = hub.server.app[SERVICES]
    account = await signup(hub)
    assert (await hub.get("/api/agents", headers=account.headers)).status == 200
    assert cached(hub, account.headers)
    listener = services.auth_changes._conn
    pid = listener.get_server_pid()
    await _sql(database_url, "SELECT pg_terminate_backend($1)", pid)

    # It listens again on a new connection, having kept nothing from before.
    async def listening_again() -> bool:
        return services.tokens.listening and services.auth_changes._conn is not listener

    await wait_for(listening_again, within=10)
    assert not cached(hub, account.headers)
    # Changes are heard on the new connection too.
    assert (await hub.get("/api/agents", headers=account.headers)).status == 200
    assert cached(hub, account.headers)
    await _sql(database_url, "DELETE FROM users WHERE id = $1", uuid.UUID(account.user_id))
    await dropped([hub], account.headers)
    assert (await hub.get("/api/agents", headers=account.headers)).status == 401


async def test_as_shipped_two_processes_refuse_a_deleted_users_token_at_once(
    postgres_server_url, redis_url
):
    """Two `python -m hub serve` processes on one database and Redis, driven
    from outside: a token both have checked (and keep) dies on both the
    moment its user is deleted in the database."""
    from tests.conftest import fresh_database

    async with fresh_database(postgres_server_url) as database_url:
        directories = [Path(tempfile.mkdtemp(prefix="syntera-tokens-")) for _ in range(2)]
        env = {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "REDIS_PREFIX": f"tokens-{uuid.uuid4().hex[:8]}",
            "JWT_SECRET": secrets.token_urlsafe(48),
            # Far longer than the test: only the change's notice can explain a refusal.
            "TOKEN_CACHE_SECONDS": "300",
        }
        webs = [Served(directory, **env) for directory in directories]
        try:
            await asyncio.gather(*(web.start() for web in webs))
            await asyncio.gather(*(web.wait_healthy() for web in webs))
            async with aiohttp.ClientSession() as http:
                async with http.post(
                    f"{webs[0].url}/api/auth/signup",
                    json={
                        "email": f"gone-{uuid.uuid4().hex[:8]}@example.com",
                        "password": "a long password",
                        "company_name": "Gone",
                    },
                ) as response:
                    session = await response.json()
                headers = {"Authorization": f"Bearer {session['access_token']}"}
                for _ in range(2):  # checked, then answered from the cache
                    for web in webs:
                        async with http.get(f"{web.url}/api/agents", headers=headers) as response:
                            assert response.status == 200
                await _sql(
                    database_url,
                    "DELETE FROM users WHERE id = $1",
                    uuid.UUID(session["user"]["id"]),
                )
                for web in webs:
                    # As soon as the process hears of it (its cache would keep
                    # the check for 300 s otherwise).
                    async def refused(url=web.url) -> bool:
                        async with http.get(f"{url}/api/agents", headers=headers) as response:
                            if response.status == 200:
                                return False
                            body = await response.json()
                            assert response.status == 401, body
                            assert_error(body, "INVALID_TOKEN")
                            return True

                    await wait_for(refused, within=10, every=0.05)
        finally:
            for web in webs:
                await web.stop()
            for directory in directories:
                shutil.rmtree(directory, ignore_errors=True)
