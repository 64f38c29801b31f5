"""The security sweep's bounded versions (bench/security, docs/security.md),
and proof that its cross-tenant probe catches what it is there to catch."""

from __future__ import annotations

import pytest

from bench.security import crosstenant
from bench.security.suite import BASE_SETTINGS, CHECKS, run_check
from bench.security.target import Target
from http_api.routing import Api, Call
from hub.app import build_app
from hub.errors import ApiError

# aiohttp warns about the hostile file names the uploads check sends.
pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.BadContentDispositionParam")


@pytest.mark.parametrize("name", list(CHECKS))
async def test_security_check(name, make_client, own_database):
    # A database of its own: the uploads check times and weighs the hub's
    # work on its own documents, not on what other tests left queued.
    async def start_hub(**settings):
        return await make_client(database_url=own_database, **settings)

    result = await run_check(CHECKS[name], start_hub, bounded=True)
    assert result.ok, result.report()


# Routes with the bugs the probe hunts, declared as any route would be.
flawed = Api()


@flawed.get("/api/leaky/agents/{id}", tags=("test",))
async def leaky(call: Call) -> dict:
    """Reads across tenants (db.system, no company filter)."""
    async with call.services.db.system() as conn:
        row = await conn.fetchrow("SELECT id, name FROM agents WHERE id = $1", call.params["id"])
    if row is None:
        raise ApiError.not_found("Agent")
    return dict(row)


@flawed.patch("/api/leaky/contacts/{id}", tags=("test",))
async def meddling(call: Call) -> dict:
    """Writes across tenants."""
    async with call.services.db.system() as conn:
        done = await conn.execute(
            "UPDATE contacts SET tags = '{x}' WHERE id = $1", call.params["id"]
        )
    if done == "UPDATE 0":
        raise ApiError.not_found("Contact")
    return {"updated": True}


@flawed.get("/api/telling/deals/{id}", tags=("test",))
async def telling(call: Call) -> dict:
    """Tells another company's deal from a missing one (403, not 404)."""
    async with call.services.db.system() as conn:
        owner = await conn.fetchval("SELECT company_id FROM deals WHERE id = $1", call.params["id"])
    if owner is None:
        raise ApiError.not_found("Deal")
    if owner != call.user.company_id:
        raise ApiError.forbidden()
    return {"id": str(call.params["id"])}


@flawed.get("/api/gizmos/{id}", tags=("test",))
async def gizmo(call: Call) -> dict:
    """A collection the probe has never heard of."""
    raise ApiError.not_found()


async def test_the_probe_catches_leaks_writes_and_tells(base_settings, livekit, aiohttp_client):
    # The voice routes answer for real (as the sweep's crosstenant.environment has them).
    app = build_app(base_settings.with_overrides(**BASE_SETTINGS, **livekit.settings()))
    flawed.install(app)
    client = await aiohttp_client(app)
    result = await crosstenant.run(Target.of(client), routes=flawed.routes)
    report = result.report()
    assert not result.ok
    expected = [
        "GET /api/leaky/agents/{id} with the victim's id: the answer (200) holds",
        "GET /api/leaky/agents/{id} with the victim's id: 200",
        "GET /api/telling/deals/{id} with the victim's id: 403",
        "PATCH /api/leaky/contacts/{id} with the victim's id: 200",
        "the victim's rows changed: contacts",
        "/api/gizmos/{id}: cannot tell what {id} after 'gizmos' is",
        # The real routes are outside this table: each is reported, none skipped.
        "/api/agents/{id} is a dynamic route outside the route table",
    ]
    for finding in expected:
        assert any(f.startswith(finding) for f in result.findings), (finding, report)
    assert any("holds" in f and "CANARY-Victim" in f for f in result.findings), report
