"""Agents API: the seed's shapes, validation, roles and tenant isolation."""

from __future__ import annotations

import uuid

import pytest

from hub.auth import mint_token
from tests.helpers import assert_error, signup

NEW_AGENT = {
    "name": "Customer Support Agent",
    "description": "Handles customer inquiries",
    "system_prompt": "You are a helpful customer support agent...",
    "model": "gpt-4o-mini",
    "temperature": 0.7,
    "max_tokens": 2000,
    "enabled": True,
    "voice_settings": {"voice": "alloy", "language": "en"},
}


async def create(client, account, **fields):
    response = await client.post(
        "/api/agents", json={**NEW_AGENT, **fields}, headers=account.headers
    )
    assert response.status == 201, await response.text()
    return await response.json()


async def count_agents(client, account) -> int:
    response = await client.get("/api/agents", headers=account.headers)
    return len((await response.json())["agents"])


async def test_create_list_get_update_delete(client, account):
    agent = await create(client, account)
    assert agent["company_id"] == account.company_id
    for field, value in NEW_AGENT.items():
        assert agent[field] == value
    assert agent["created_at"].endswith("Z")

    listed = await (await client.get("/api/agents", headers=account.headers)).json()
    assert [a["id"] for a in listed["agents"]] == [agent["id"]]

    fetched = await client.get(f"/api/agents/{agent['id']}", headers=account.headers)
    assert (await fetched.json()) == agent

    patched = await client.patch(
        f"/api/agents/{agent['id']}",
        json={"name": "Updated Agent Name", "enabled": False},
        headers=account.headers,
    )
    assert patched.status == 200
    body = await patched.json()
    assert body["name"] == "Updated Agent Name" and body["enabled"] is False
    assert body["system_prompt"] == NEW_AGENT["system_prompt"]  # untouched fields stay

    deleted = await client.delete(f"/api/agents/{agent['id']}", headers=account.headers)
    assert deleted.status == 200
    assert (await deleted.json()) == {"id": agent["id"], "deleted": True}
    gone = await client.get(f"/api/agents/{agent['id']}", headers=account.headers)
    assert gone.status == 404
    assert_error(await gone.json(), "NOT_FOUND")


async def test_zero_temperature_stays_zero(client, account):
    agent = await create(client, account, temperature=0)
    assert agent["temperature"] == 0
    patched = await client.patch(
        f"/api/agents/{agent['id']}", json={"temperature": 0}, headers=account.headers
    )
    assert (await patched.json())["temperature"] == 0


async def test_defaults_for_optional_fields(client, account):
    response = await client.post("/api/agents", json={"name": "Minimal"}, headers=account.headers)
    body = await response.json()
    assert response.status == 201
    assert body["model"] and body["enabled"] is True and body["voice_settings"] == {}


@pytest.mark.parametrize(
    "fields, bad_field",
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": 2.01}, "temperature"),
        ({"temperature": "0.5"}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 32001}, "max_tokens"),
        ({"max_tokens": 10.5}, "max_tokens"),
        ({"model": ""}, "model"),
        ({"model": "   "}, "model"),
        ({"voice_settings": "alloy"}, "voice_settings"),
        ({"enabled": "yes"}, "enabled"),
        ({"color": "blue"}, "color"),
    ],
)
async def test_create_rejects_bad_values_and_writes_nothing(client, account, fields, bad_field):
    response = await client.post(
        "/api/agents", json={**NEW_AGENT, **fields}, headers=account.headers
    )
    assert response.status == 400
    body = await response.json()
    assert_error(body, "VALIDATION_ERROR")
    assert bad_field in body["details"]["fields"]
    assert await count_agents(client, account) == 0


async def test_name_is_required(client, account):
    response = await client.post("/api/agents", json={"model": "x"}, headers=account.headers)
    body = await response.json()
    assert response.status == 400 and "name" in body["details"]["fields"]


@pytest.mark.parametrize(
    "fields, bad_field",
    [
        ({"name": None}, "name"),
        ({"temperature": 3}, "temperature"),
        ({"model": None}, "model"),
        ({"unknown": 1}, "unknown"),
    ],
)
async def test_patch_rejects_bad_values_and_changes_nothing(client, account, fields, bad_field):
    agent = await create(client, account)
    response = await client.patch(
        f"/api/agents/{agent['id']}", json=fields, headers=account.headers
    )
    assert response.status == 400
    assert bad_field in (await response.json())["details"]["fields"]
    after = await (await client.get(f"/api/agents/{agent['id']}", headers=account.headers)).json()
    assert after == agent


async def test_malformed_json_wrong_type_and_oversized_body(client, account):
    response = await client.post(
        "/api/agents",
        data=b'{"name": "x",',
        headers={**account.headers, "Content-Type": "application/json"},
    )
    assert response.status == 400
    assert_error(await response.json(), "INVALID_JSON")

    response = await client.post(
        "/api/agents", data=b"name=x", headers={**account.headers, "Content-Type": "text/plain"}
    )
    assert response.status == 415
    assert_error(await response.json(), "UNSUPPORTED_MEDIA_TYPE")

    response = await client.post(
        "/api/agents", json=["not", "an", "object"], headers=account.headers
    )
    assert response.status == 400
    assert_error(await response.json(), "VALIDATION_ERROR")

    huge = {**NEW_AGENT, "system_prompt": "x" * (2 * 1024 * 1024)}
    response = await client.post("/api/agents", json=huge, headers=account.headers)
    assert response.status == 413
    assert_error(await response.json(), "PAYLOAD_TOO_LARGE")
    assert await count_agents(client, account) == 0


async def test_another_company_cannot_see_or_touch_an_agent(client, account):
    agent = await create(client, account)
    other = await signup(client, "Other Co")
    path = f"/api/agents/{agent['id']}"

    assert (await (await client.get("/api/agents", headers=other.headers)).json()) == {"agents": []}
    for method, kwargs in [
        ("GET", {}),
        ("PATCH", {"json": {"name": "stolen"}}),
        ("DELETE", {}),
    ]:
        response = await client.request(method, path, headers=other.headers, **kwargs)
        assert response.status == 404, method
        assert_error(await response.json(), "NOT_FOUND")

    still = await (await client.get(path, headers=account.headers)).json()
    assert still == agent


async def test_guessed_and_malformed_ids_are_not_found(client, account):
    for agent_id in (uuid.uuid4(), "not-a-uuid", "1"):
        response = await client.get(f"/api/agents/{agent_id}", headers=account.headers)
        assert response.status == 404
        assert_error(await response.json(), "NOT_FOUND")


async def test_members_cannot_delete_agents(client, account, base_settings):
    agent = await create(client, account)
    member_token, _ = mint_token(
        base_settings.ensure_jwt_secret(),
        user_id=uuid.uuid4(),
        company_id=uuid.UUID(account.company_id),
        role="member",
        email="member@example.com",
    )
    member = {"Authorization": f"Bearer {member_token}"}
    assert (await client.get(f"/api/agents/{agent['id']}", headers=member)).status == 200
    response = await client.delete(f"/api/agents/{agent['id']}", headers=member)
    assert response.status == 403
    assert_error(await response.json(), "FORBIDDEN")
    assert (await client.get(f"/api/agents/{agent['id']}", headers=account.headers)).status == 200
