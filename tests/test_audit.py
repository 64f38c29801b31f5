"""The audit log records every mutating call, for owners and admins to read."""

from __future__ import annotations

import uuid

from hub.auth import mint_token
from tests.helpers import assert_error, signup


async def test_mutating_calls_are_recorded(client):
    account = await signup(client)
    created = await client.post(
        "/api/agents",
        json={"name": "Audited"},
        headers={**account.headers, "X-Request-Id": "req-12345678"},
    )
    agent_id = (await created.json())["id"]
    await client.patch(f"/api/agents/{agent_id}", json={"temperature": 9}, headers=account.headers)
    await client.delete(f"/api/agents/{agent_id}", headers=account.headers)
    await client.get("/api/agents", headers=account.headers)  # reads are not audited

    page = await (await client.get("/api/audit-log?limit=10", headers=account.headers)).json()
    entries = page["entries"]
    assert page["total"] == 4
    assert [(e["method"], e["status"]) for e in entries] == [
        ("DELETE", 200),
        ("PATCH", 400),
        ("POST", 201),
        ("POST", 201),  # the sign-up
    ]
    delete, _, create, signup_entry = entries
    assert delete["resource_id"] == agent_id and delete["path"] == f"/api/agents/{agent_id}"
    assert create["request_id"] == "req-12345678" and create["resource_id"] == agent_id
    assert create["user_id"] == account.user_id and create["ip"]
    assert signup_entry["path"] == "/api/auth/signup"

    second = await (
        await client.get("/api/audit-log?limit=2&offset=2", headers=account.headers)
    ).json()
    assert [e["id"] for e in second["entries"]] == [e["id"] for e in entries[2:4]]


async def test_audit_log_is_per_company_and_for_owners_and_admins(client, base_settings):
    account = await signup(client)
    other = await signup(client)
    await client.post("/api/agents", json={"name": "Mine"}, headers=account.headers)
    theirs = await (await client.get("/api/audit-log", headers=other.headers)).json()
    assert all(e["path"] == "/api/auth/signup" for e in theirs["entries"]) and theirs["total"] == 1

    member, _ = mint_token(
        base_settings.ensure_jwt_secret(),
        user_id=uuid.uuid4(),
        company_id=uuid.UUID(account.company_id),
        role="member",
        email=None,
    )
    response = await client.get("/api/audit-log", headers={"Authorization": f"Bearer {member}"})
    assert response.status == 403
    assert_error(await response.json(), "FORBIDDEN")


async def test_audit_log_paging_is_validated(client, account):
    for query in ("limit=0", "limit=101", "offset=-1", "limit=abc"):
        response = await client.get(f"/api/audit-log?{query}", headers=account.headers)
        assert response.status == 400, query
        assert_error(await response.json(), "VALIDATION_ERROR")


async def test_searches_are_not_audited(client, account):
    response = await client.post(
        "/api/knowledge-base/search", json={"query": "anything"}, headers=account.headers
    )
    assert response.status == 200
    page = await (await client.get("/api/audit-log", headers=account.headers)).json()
    assert [e["path"] for e in page["entries"]] == ["/api/auth/signup"]
