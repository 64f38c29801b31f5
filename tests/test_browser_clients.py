"""What browsers send: `toISOString()` dates, cache busters, and a staff
dashboard on another origin (CORS_ORIGINS).

In-process through aiohttp's test server, which runs the same app, middlewares
and route table as `python -m hub serve` (only the settings come from the
test instead of the environment; `Settings.from_env` is checked on its own
below); the CORS part is also driven from headless Chromium, because only a
browser decides what a page may read."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from urllib.parse import quote

import pytest

from http_api.middleware import STAFF_PREFLIGHT
from http_api.routes import api
from hub.config import ConfigError, Settings
from hub.services import SERVICES
from tests.helpers import assert_error, signup

DASHBOARD = "https://dash.example"
STRANGER = "https://evil.example"


async def _started(client, account, *moments: datetime) -> None:
    """Conversations of `account` started at these instants."""
    company = uuid.UUID(account.company_id)
    async with client.app[SERVICES].db.tenant(company) as conn:
        for moment in moments:
            await conn.execute(
                "INSERT INTO conversations (company_id, channel, status, started_at)"
                " VALUES ($1, 'chat', 'active', $2)",
                company,
                moment,
            )


@pytest.fixture
async def dated(client):
    """c1 2026-11-24 21:00Z, c2 2026-11-24 23:30Z, c3 2026-11-25 10:00Z."""
    account = await signup(client)
    await _started(
        client,
        account,
        datetime(2026, 11, 24, 21, tzinfo=UTC),
        datetime(2026, 11, 24, 23, 30, tzinfo=UTC),
        datetime(2026, 11, 25, 10, tzinfo=UTC),
    )
    return account


@pytest.mark.parametrize(
    ("query", "total"),
    [
        # What `new Date(...).toISOString()` sends.
        ("startDate=2026-11-24T22:05:36.120Z&endDate=2026-11-25T09:00:00.000Z", 1),
        # An end instant is included, to the microsecond.
        ("startDate=2026-11-24T22:05:36.120Z&endDate=2026-11-25T10:00:00.000Z", 2),
        ("startDate=2026-11-24T22:05:36.120Z&endDate=2026-11-25T09:59:59.999Z", 1),
        # An explicit offset wins over `tz`.
        (f"startDate={quote('2026-11-25T00:00:00+01:00')}&tz=Asia/Tokyo", 2),
        # ... also left unencoded, when its `+` arrives as a space.
        ("startDate=2026-11-25T00:00:00+01:00", 2),
        # A plain end date is the whole day, after a start instant.
        ("startDate=2026-11-24T22:00:00Z&endDate=2026-11-25", 2),
        # Plain dates are whole days in `tz` (default UTC).
        ("startDate=2026-11-24&endDate=2026-11-24", 2),
        ("startDate=2026-11-25&endDate=2026-11-25&tz=Asia/Tokyo", 3),
        # Without an offset, a date-time is read in `tz`.
        ("startDate=2026-11-25T08:00:00", 1),
        ("startDate=2026-11-25T08:00:00&tz=Asia/Tokyo", 2),
        # ISO 8601's basic format and RFC 3339's lowercase letters.
        ("startDate=20261125", 1),
        ("startDate=2026-11-24t23:00:00z", 2),
    ],
)
async def test_conversation_ranges_take_dates_and_datetimes(client, dated, query, total):
    response = await client.get(f"/api/conversations?{query}", headers=dated.headers)
    assert response.status == 200, await response.text()
    assert (await response.json())["total"] == total


async def test_analytics_take_datetimes(client, dated):
    async def get(path: str, query: str) -> dict:
        response = await client.get(f"/api/analytics/{path}?{query}", headers=dated.headers)
        assert response.status == 200, await response.text()
        return await response.json()

    iso = "startDate=2026-11-24T22:05:36.120Z&endDate=2026-11-25T23:59:59.999Z"
    assert (await get("overview", iso))["totalConversations"] == 2
    timeline = (await get("conversations", iso))["timeline"]
    assert timeline == [{"date": "2026-11-24", "count": 1}, {"date": "2026-11-25", "count": 1}]
    # With one bound, the range is 30 days counted from the day it falls on.
    assert (await get("overview", "startDate=2026-11-24T22:05:36.120Z"))["totalConversations"] == 2
    assert (await get("overview", "endDate=2026-11-24T22:00:00Z"))["totalConversations"] == 1
    for path in ("costs", "agents", "voice"):
        await get(path, iso)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("startDate=yesterday", "startDate"),
        ("startDate=1733090000000", "startDate"),
        ("startDate=2026-11-24T25:00:00Z", "startDate"),
        ("endDate=9999-12-31", "endDate"),
        ("startDate=2026-11-25T10:00:00Z&endDate=2026-11-25T09:59:59Z", "endDate"),
        ("startDate=2026-11-25T10:00:00Z&endDate=2026-11-24", "endDate"),
        ("startDate=2025-11-24T00:00:00Z&endDate=2026-11-25T00:00:00Z", "endDate"),
    ],
)
async def test_bad_dates_are_400_naming_their_field(client, account, query, field):
    for path in ("/api/conversations", "/api/analytics/overview"):
        response = await client.get(f"{path}?{query}", headers=account.headers)
        assert response.status == 400, (path, query)
        body = await response.json()
        assert_error(body, "VALIDATION_ERROR")
        assert list(body["details"]["fields"]) == [field], body


@pytest.mark.parametrize(
    "path",
    [
        "/api/conversations",
        "/api/analytics/overview",
        "/api/analytics/conversations",
        "/api/knowledge-base",
        "/api/audit-log",
        "/api/agents",
    ],
)
async def test_unknown_query_parameters_are_ignored(client, dated, path):
    plain = await client.get(path, headers=dated.headers)
    busted = await client.get(
        f"{path}?_=1733090000000&utm_source=mail&junk=%00", headers=dated.headers
    )
    assert plain.status == busted.status == 200, await busted.text()
    assert await busted.json() == await plain.json()


async def test_known_query_parameters_stay_checked(client, account):
    for query in ("limit=0&_=1", "status=closed&_=1", "startDate=2026-01-01%00&_=1"):
        response = await client.get(f"/api/conversations?{query}", headers=account.headers)
        assert response.status == 400, query
        assert_error(await response.json(), "VALIDATION_ERROR")


async def test_unknown_body_fields_are_still_400(client, account):
    response = await client.post(
        "/api/agents?_=1", json={"name": "A", "bogus": 1}, headers=account.headers
    )
    assert response.status == 400
    body = await response.json()
    assert_error(body, "VALIDATION_ERROR")
    assert list(body["details"]["fields"]) == ["bogus"]
    agents = await (await client.get("/api/agents", headers=account.headers)).json()
    assert agents["agents"] == []


# --- CORS for the staff API -------------------------------------------------


async def _audited(hub, account) -> int:
    async with hub.app[SERVICES].db.system() as conn:
        return await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE company_id = $1", uuid.UUID(account.company_id)
        )


def _preflight(method: str = "GET", origin: str = DASHBOARD) -> dict:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization,content-type,x-request-id",
    }


def test_cors_origins_from_the_environment():
    settings = Settings.from_env(
        {"CORS_ORIGINS": "https://Dash.example:443/, http://localhost:3000"}
    )
    assert settings.cors_origins == ("https://dash.example", "http://localhost:3000")
    assert Settings.from_env({}).cors_origins == ()
    for bad in ("*", "dash.example", "https://dash.example/app", "ftp://dash.example"):
        with pytest.raises(ConfigError, match="CORS_ORIGINS"):
            Settings.from_env({"CORS_ORIGINS": bad})


def test_preflight_allows_every_method_the_staff_routes_have():
    allowed = {m.strip() for m in STAFF_PREFLIGHT["Access-Control-Allow-Methods"].split(",")}
    assert {r.method for r in api.routes if r.path.startswith("/api/")} == allowed


async def test_an_allowed_origin_may_call_the_staff_api(make_client):
    hub = await make_client(cors_origins=(DASHBOARD,), rate_limit_per_hour=3)
    owner = await signup(hub)
    audited_before = await _audited(hub, owner)
    # Preflights: answered before authentication (even with a token, which
    # browsers never send on one), never counted, never audited.
    for method in ("GET", "POST", "PATCH", "PUT", "DELETE", "GET"):
        preflight = await hub.options(
            f"/api/agents/{uuid.uuid4()}", headers={**owner.headers, **_preflight(method)}
        )
        assert preflight.status == 204, await preflight.text()
        assert preflight.headers["Access-Control-Allow-Origin"] == DASHBOARD
        assert method in preflight.headers["Access-Control-Allow-Methods"]
        allowed_headers = preflight.headers["Access-Control-Allow-Headers"]
        for header in ("Authorization", "Content-Type", "X-Request-Id"):
            assert header in allowed_headers
        assert int(preflight.headers["Access-Control-Max-Age"]) > 0
        assert "Access-Control-Allow-Credentials" not in preflight.headers
        assert "X-RateLimit-Remaining" not in preflight.headers
        assert "Origin" in preflight.headers["Vary"]
    assert await _audited(hub, owner) == audited_before

    headers = {**owner.headers, "Origin": DASHBOARD}
    listed = await hub.get("/api/agents", headers=headers)
    assert listed.status == 200
    assert listed.headers["Access-Control-Allow-Origin"] == DASHBOARD
    assert listed.headers["X-RateLimit-Remaining"] == "2"  # the preflights did not count
    exposed = listed.headers["Access-Control-Expose-Headers"]
    for header in ("X-Request-Id", "X-RateLimit-Remaining", "Retry-After"):
        assert header in exposed
    assert "Origin" in listed.headers["Vary"]
    assert "Access-Control-Allow-Credentials" not in listed.headers

    # Errors carry them too, so the dashboard can read why.
    errors = [
        await hub.get("/api/agents", headers={"Origin": DASHBOARD}),  # 401
        await hub.get(f"/api/conversations/{uuid.uuid4()}", headers=headers),  # 404
        await hub.get("/api/agents", headers=headers),  # the third call: the last allowed
        await hub.get("/api/agents", headers=headers),  # 429
    ]
    assert [e.status for e in errors] == [401, 404, 200, 429]
    for error in errors:
        assert error.headers["Access-Control-Allow-Origin"] == DASHBOARD
        assert "Origin" in error.headers["Vary"]
    assert "Retry-After" in errors[3].headers


async def test_other_origins_get_no_cors(make_client):
    hub = await make_client(cors_origins=(DASHBOARD,))
    owner = await signup(hub)
    for origin in (STRANGER, "https://dash.example.evil.example", "null", "https://x:99999"):
        preflight = await hub.options("/api/agents", headers=_preflight("POST", origin))
        assert preflight.status == 403, origin
        assert_error(await preflight.json(), "ORIGIN_NOT_ALLOWED")
        assert "Access-Control-Allow-Origin" not in preflight.headers
        assert "Access-Control-Allow-Methods" not in preflight.headers
        answer = await hub.get("/api/agents", headers={**owner.headers, "Origin": origin})
        assert answer.status == 200  # the hub answers; the browser keeps it from the page
        assert "Access-Control-Allow-Origin" not in answer.headers
        assert "Origin" in answer.headers["Vary"]
    # Routes outside /api and /public never had CORS.
    health = await hub.get("/healthz", headers={"Origin": DASHBOARD})
    assert "Access-Control-Allow-Origin" not in health.headers


async def test_without_cors_origins_no_origin_is_allowed(client, account):
    preflight = await client.options("/api/agents", headers=_preflight("GET"))
    assert preflight.status == 403
    assert_error(await preflight.json(), "ORIGIN_NOT_ALLOWED")
    assert "Access-Control-Allow-Origin" not in preflight.headers
    answer = await client.get("/api/agents", headers={**account.headers, "Origin": DASHBOARD})
    assert answer.status == 200
    assert "Access-Control-Allow-Origin" not in answer.headers
    assert "Vary" not in answer.headers
    # A plain OPTIONS (no preflight) is still a wrong method.
    plain = await client.options("/api/agents")
    assert plain.status == 405


_FETCH = """async ([url, token, method, body]) => {
    try {
        const response = await fetch(url, {
            method,
            headers: {Authorization: `Bearer ${token}`, "Content-Type": "application/json"},
            body: body === null ? undefined : JSON.stringify(body),
        });
        return {
            status: response.status,
            remaining: response.headers.get("X-RateLimit-Remaining"),
            body: await response.json(),
        };
    } catch (error) {
        return {failed: String(error)};
    }
}"""


async def test_a_dashboard_on_another_origin_in_a_browser(make_client, browser):
    hub = await make_client(cors_origins=(DASHBOARD,))
    owner = await signup(hub)
    base = str(hub.make_url("")).rstrip("/")
    page = await browser.new_page()
    for origin in (DASHBOARD, STRANGER):
        await page.route(
            f"{origin}/",
            lambda route: route.fulfill(status=200, content_type="text/html", body="<p>dash</p>"),
        )

    await page.goto(f"{DASHBOARD}/")
    created = await page.evaluate(
        _FETCH, [f"{base}/api/agents?_=1733090000000", owner.token, "POST", {"name": "Support"}]
    )
    assert created["status"] == 201, created
    agent_id = created["body"]["id"]
    # What a dashboard writes: an unencoded offset, a cache buster.
    since = datetime.now(UTC).isoformat()
    listed = await page.evaluate(
        _FETCH, [f"{base}/api/conversations?startDate={since}&_=1", owner.token, "GET", None]
    )
    assert listed["status"] == 200 and listed["remaining"] is not None, listed
    missing = await page.evaluate(
        _FETCH, [f"{base}/api/agents/{uuid.uuid4()}", owner.token, "GET", None]
    )
    assert missing["status"] == 404 and missing["body"]["code"] == "NOT_FOUND", missing
    renamed = await page.evaluate(
        _FETCH, [f"{base}/api/agents/{agent_id}", owner.token, "PATCH", {"name": "Sales"}]
    )
    assert renamed["status"] == 200 and renamed["body"]["name"] == "Sales", renamed

    await page.goto(f"{STRANGER}/")
    refused = await page.evaluate(_FETCH, [f"{base}/api/agents", owner.token, "GET", None])
    assert "failed" in refused, json.dumps(refused)
    await page.close()
