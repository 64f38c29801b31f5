"""Rate limits: per user per hour, headers on every authenticated response,
shared through Redis across processes, per IP for sign-up and log-in."""

from __future__ import annotations

import asyncio
import ipaddress
import time

import pytest

from hub.config import ConfigError, Settings
from hub.ratelimit import MemoryRateLimiter, RedisRateLimiter
from tests.helpers import assert_error, signup


async def test_sixth_call_of_five_is_limited_with_headers(make_client):
    hub = await make_client(rate_limit_per_hour=5)
    account = await signup(hub)
    remaining = []
    for _ in range(5):
        response = await hub.get("/api/agents", headers=account.headers)
        assert response.status == 200
        assert response.headers["X-RateLimit-Limit"] == "5"
        remaining.append(int(response.headers["X-RateLimit-Remaining"]))
    assert remaining == [4, 3, 2, 1, 0]

    limited = await hub.get("/api/agents", headers=account.headers)
    assert limited.status == 429
    assert_error(await limited.json(), "RATE_LIMITED")
    reset = int(limited.headers["X-RateLimit-Reset"])
    retry_after = int(limited.headers["Retry-After"])
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert 0 < retry_after <= 3600
    assert abs((reset - time.time()) - retry_after) <= 2

    # Errors after authentication carry the headers too, and other users are unaffected.
    other = await signup(hub)
    assert (await hub.get("/api/agents", headers=other.headers)).status == 200


async def test_redis_shares_the_count_between_two_app_instances(make_client, redis_url):
    first = await make_client(rate_limit_per_hour=5, redis_url=redis_url)
    second = await make_client(rate_limit_per_hour=5, redis_url=redis_url)
    account = await signup(first)
    statuses = []
    for i in range(6):
        hub = first if i % 2 == 0 else second
        statuses.append((await hub.get("/api/agents", headers=account.headers)).status)
    assert statuses == [200, 200, 200, 200, 200, 429]


async def test_signup_and_login_are_limited_per_ip(make_client):
    hub = await make_client(auth_rate_limit_per_hour=3)
    account = await signup(hub)
    ok = await hub.post(
        "/api/auth/login", json={"email": account.email, "password": "correct horse battery"}
    )
    assert ok.status == 200 and ok.headers["X-RateLimit-Limit"] == "3"
    await hub.post("/api/auth/login", json={"email": account.email, "password": "wrong one!"})
    limited = await hub.post(
        "/api/auth/login", json={"email": account.email, "password": "correct horse battery"}
    )
    assert limited.status == 429
    assert "Retry-After" in limited.headers


async def test_memory_limiter_windows():
    limiter = MemoryRateLimiter()
    quotas = [await limiter.hit("k", 2, 3600) for _ in range(3)]
    assert [q.allowed for q in quotas] == [True, True, False]
    assert [q.remaining for q in quotas] == [1, 0, 0]
    assert (await limiter.hit("other", 2, 3600)).allowed


async def test_redis_outage_fails_open_and_is_counted():
    import redis.asyncio as aioredis

    failures = []
    dead = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    limiter = RedisRateLimiter(dead, "t", lambda: failures.append(1))
    quota = await limiter.hit("k", 5, 3600)
    assert quota.allowed and failures == [1]
    await dead.aclose()


async def test_a_redis_window_counts_expires_and_survives_a_script_flush(redis_url):
    """Each hit is counted by one script (INCRBY and EXPIREAT, atomically),
    a burst on one counter by one call; the window's key expires after the
    window, and a Redis that lost its scripts (a restart, SCRIPT FLUSH) is
    sent the script again."""
    import uuid

    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url)
    prefix = f"rl-test-{uuid.uuid4().hex[:8]}"
    limiter = RedisRateLimiter(client, prefix)
    try:
        quotas = [await limiter.hit("k", 2, 3600) for _ in range(2)]
        assert [q.remaining for q in quotas] == [1, 0] and all(q.allowed for q in quotas)
        key = f"{prefix}:rl:k:{quotas[0].reset_at - 3600}"
        expires_at = await client.expiretime(key)
        assert expires_at == quotas[0].reset_at + 5
        # A burst on one counter: one Redis call, each hit its own count, in order.
        calls = []
        count = limiter._count

        async def counting(**kwargs):
            calls.append(kwargs["args"][1])
            return await count(**kwargs)

        limiter._count = counting
        burst = await asyncio.gather(*(limiter.hit("burst", 3, 3600) for _ in range(5)))
        assert calls == [5]
        assert [q.remaining for q in burst] == [2, 1, 0, 0, 0]
        assert [q.allowed for q in burst] == [True, True, True, False, False]
        # Hits that come while a counter's call is out wait for it, then go together.
        calls.clear()
        release = asyncio.Event()

        async def held(**kwargs):
            calls.append(kwargs["args"][1])
            await release.wait()
            return await count(**kwargs)

        limiter._count = held
        first = asyncio.ensure_future(limiter.hit("queued", 10, 3600))
        await asyncio.sleep(0.05)  # its call is out, and held
        later = [asyncio.ensure_future(limiter.hit("queued", 10, 3600)) for _ in range(2)]
        await asyncio.sleep(0.05)
        assert calls == [1]
        release.set()
        counted = await asyncio.gather(first, *later)
        assert calls == [1, 2]
        assert [q.remaining for q in counted] == [9, 8, 7]
        limiter._count = count
        await client.script_flush()
        third = await limiter.hit("k", 2, 3600)
        assert not third.allowed and third.remaining == 0
        assert int(await client.get(key)) == 3
    finally:
        await client.delete(*[k async for k in client.scan_iter(f"{prefix}:*")])
        await client.aclose()


async def test_behind_a_trusted_proxy_limits_and_audit_follow_x_forwarded_for(make_client):
    hub = await make_client(
        auth_rate_limit_per_hour=2, trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),)
    )

    async def login(forwarded_for: str) -> int:
        response = await hub.post(
            "/api/auth/login",
            json={"email": "nobody@example.com", "password": "not the one"},
            headers={"X-Forwarded-For": forwarded_for},
        )
        return response.status

    # The proxy (127.0.0.1) appends the client it saw; what the client wrote
    # before that (the left part) is not believed.
    assert [await login(f"6.6.6.{i}, 203.0.113.5") for i in range(3)] == [401, 401, 429]
    assert await login("203.0.113.6") == 401  # another client behind the same proxy

    account = await signup(hub)
    await hub.post(
        "/api/agents",
        json={"name": "Audited"},
        headers={**account.headers, "X-Forwarded-For": "198.51.100.7"},
    )
    audit = await (await hub.get("/api/audit-log?limit=1", headers=account.headers)).json()
    assert audit["entries"][0]["ip"] == "198.51.100.7"


async def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(make_client):
    hub = await make_client(
        auth_rate_limit_per_hour=2, trusted_proxies=(ipaddress.ip_network("10.0.0.0/8"),)
    )
    statuses = []
    for i in range(3):
        response = await hub.post(
            "/api/auth/login",
            json={"email": "nobody@example.com", "password": "not the one"},
            headers={"X-Forwarded-For": f"203.0.113.{i}"},  # spoofed: a new IP each time
        )
        statuses.append(response.status)
    assert statuses == [401, 401, 429]


def test_trusted_proxies_setting():
    settings = Settings.from_env({"TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.4,fd00::/8"})
    assert [str(n) for n in settings.trusted_proxies] == [
        "10.0.0.0/8",
        "192.168.1.4/32",
        "fd00::/8",
    ]
    assert Settings.from_env({}).trusted_proxies == ()
    with pytest.raises(ConfigError, match="TRUSTED_PROXIES"):
        Settings.from_env({"TRUSTED_PROXIES": "10.0.0.0/33"})


async def test_unknown_routes_and_wrong_methods_count_for_an_authenticated_caller(make_client):
    hub = await make_client(rate_limit_per_hour=3)
    account = await signup(hub)
    unknown = await hub.get("/api/nothing-here", headers=account.headers)
    assert unknown.status == 404 and unknown.headers["X-RateLimit-Remaining"] == "2"
    assert_error(await unknown.json(), "NOT_FOUND")
    wrong = await hub.put("/api/agents", headers=account.headers)
    assert wrong.status == 405 and wrong.headers["X-RateLimit-Remaining"] == "1"
    assert "X-RateLimit-Limit" not in (await hub.get("/api/nothing-here")).headers
    bad_token = await hub.get("/api/nothing-here", headers={"Authorization": "Bearer nope"})
    assert bad_token.status == 404 and "X-RateLimit-Limit" not in bad_token.headers
    await hub.get("/api/agents", headers=account.headers)
    limited = await hub.get("/api/nothing-here", headers=account.headers)
    assert limited.status == 429 and "Retry-After" in limited.headers
