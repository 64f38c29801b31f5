"""Publishable keys and the public REST API a website's visitors use."""

from __future__ import annotations

import asyncio
import time
import uuid

import jwt
import pytest
from aiohttp import FormData
from yarl import URL

from hub.auth import mint_token
from hub.services import SERVICES
from tests.helpers import assert_error, signup

ORIGIN = "https://shop.example.com"


async def make_agent(client, account, **fields):
    body = {
        "name": "Widget agent",
        "system_prompt": "SECRET PROMPT",
        "greeting": "Hi there!",
        "theme": {"color": "#0a7"},
        **fields,
    }
    response = await client.post("/api/agents", json=body, headers=account.headers)
    assert response.status == 201, await response.text()
    return await response.json()


async def make_key(client, account, agent_id, origins=(ORIGIN,)):
    response = await client.post(
        f"/api/agents/{agent_id}/keys",
        json={"allowed_origins": list(origins)},
        headers=account.headers,
    )
    assert response.status == 201, await response.text()
    return await response.json()


@pytest.fixture
async def site(client, account):
    agent = await make_agent(client, account)
    key = await make_key(client, account, agent["id"])
    headers = {"Authorization": f"Bearer {key['key']}", "Origin": ORIGIN}
    return account, agent, key, headers


async def start(client, agent_id, headers):
    response = await client.post(
        "/public/conversations", json={"agent_id": agent_id}, headers=headers
    )
    assert response.status == 201, await response.text()
    return await response.json()


async def test_key_lifecycle(client, account):
    agent = await make_agent(client, account)
    key = await make_key(client, account, agent["id"], ["https://Shop.Example.com/", "*"])
    assert key["key"].startswith("pk_") and len(key["key"]) > 40
    assert key["allowed_origins"] == ["https://shop.example.com", "*"]
    listed = await (
        await client.get(f"/api/agents/{agent['id']}/keys", headers=account.headers)
    ).json()
    assert [k["id"] for k in listed["keys"]] == [key["id"]]
    assert "key" not in listed["keys"][0] and listed["keys"][0]["key_prefix"] == key["key"][:12]

    public = {"Authorization": f"Bearer {key['key']}"}
    assert (await client.get(f"/public/agents/{agent['id']}", headers=public)).status == 200
    revoked = await client.delete(
        f"/api/agents/{agent['id']}/keys/{key['id']}", headers=account.headers
    )
    assert revoked.status == 200
    refused = await client.get(f"/public/agents/{agent['id']}", headers=public)
    assert refused.status == 401
    assert_error(await refused.json(), "INVALID_KEY")
    again = await client.delete(
        f"/api/agents/{agent['id']}/keys/{key['id']}", headers=account.headers
    )
    assert again.status == 404


@pytest.mark.parametrize(
    "origins", [[], ["shop.example.com"], ["https://shop.example.com/path"], ["ftp://x.com"], "x"]
)
async def test_bad_allowed_origins(client, account, origins):
    agent = await make_agent(client, account)
    response = await client.post(
        f"/api/agents/{agent['id']}/keys",
        json={"allowed_origins": origins},
        headers=account.headers,
    )
    assert response.status == 400
    assert_error(await response.json(), "VALIDATION_ERROR")
    listed = await (
        await client.get(f"/api/agents/{agent['id']}/keys", headers=account.headers)
    ).json()
    assert listed["keys"] == []


async def test_keys_are_per_company_and_for_admins(client, account, base_settings):
    agent = await make_agent(client, account)
    other = await signup(client)
    response = await client.post(
        f"/api/agents/{agent['id']}/keys", json={"allowed_origins": [ORIGIN]}, headers=other.headers
    )
    assert response.status == 404
    member, _ = mint_token(
        base_settings.ensure_jwt_secret(),
        user_id=uuid.uuid4(),
        company_id=uuid.UUID(account.company_id),
        role="member",
        email=None,
    )
    response = await client.post(
        f"/api/agents/{agent['id']}/keys",
        json={"allowed_origins": [ORIGIN]},
        headers={"Authorization": f"Bearer {member}"},
    )
    assert response.status == 403


async def test_public_profile_never_shows_the_prompt(client, site):
    _, agent, _, headers = site
    response = await client.get(f"/public/agents/{agent['id']}", headers=headers)
    profile = await response.json()
    assert profile == {
        "id": agent["id"],
        "name": "Widget agent",
        "avatar_url": None,
        "greeting": "Hi there!",
        "theme": {"color": "#0a7"},
    }
    assert "SECRET" not in await response.text()
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN


async def test_key_checks(client, site, account):
    _, agent, key, headers = site
    other_agent = await make_agent(client, account, name="Other")
    cases = [
        ({}, 401, "INVALID_KEY"),
        ({"Authorization": "Bearer pk_made_up_key"}, 401, "INVALID_KEY"),
        (
            {"Authorization": f"Bearer {account.token}"},
            401,
            "INVALID_KEY",
        ),  # a staff token is no key
        ({**headers, "Origin": "https://evil.example.net"}, 403, "ORIGIN_NOT_ALLOWED"),
    ]
    for request_headers, status, code in cases:
        response = await client.get(f"/public/agents/{agent['id']}", headers=request_headers)
        assert response.status == status, request_headers
        assert_error(await response.json(), code)
    # A key speaks for its own agent only.
    response = await client.get(f"/public/agents/{other_agent['id']}", headers=headers)
    assert response.status == 404
    response = await client.post(
        "/public/conversations", json={"agent_id": other_agent["id"]}, headers=headers
    )
    assert response.status == 404


async def test_cors_is_for_public_routes_only(client, site):
    _, agent, _, _ = site
    preflight = await client.options(
        "/public/conversations",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "X-Conversation-Token" in preflight.headers["Access-Control-Allow-Headers"]
    staff = await client.get("/api/agents", headers={"Origin": ORIGIN})
    assert "Access-Control-Allow-Origin" not in staff.headers


async def test_conversation_messages_history_and_reply(client, site):
    account, agent, _, headers = site
    started = await start(client, agent["id"], headers)
    assert started["agent"]["name"] == "Widget agent"
    claims = jwt.decode(started["token"], options={"verify_signature": False})
    assert claims["sub"] == started["id"] and claims["exp"] > time.time() + 86400

    token_headers = {**headers, "X-Conversation-Token": started["token"]}
    path = f"/public/conversations/{started['id']}/messages"
    sent = await client.post(
        path, json={"content": "What do you sell?", "client_id": "c1"}, headers=token_headers
    )
    assert sent.status == 201
    message = await sent.json()
    assert message["sender_type"] == "user" and message["seq"] == 1
    again = await client.post(
        path, json={"content": "What do you sell?", "client_id": "c1"}, headers=token_headers
    )
    assert (await again.json())["id"] == message["id"]

    # The offline responder answers (no model configured in this hub).
    await client.app[SERVICES].jobs.join()
    history = await (await client.get(f"{path}?after_seq=0", headers=token_headers)).json()
    assert [m["sender_type"] for m in history["messages"]] == ["user", "agent"]
    reply = history["messages"][1]
    assert set(reply["ai_metadata"]) <= {"sources"}  # no costs or tokens for visitors
    later = await (await client.get(f"{path}?after_seq=1", headers=token_headers)).json()
    assert [m["seq"] for m in later["messages"]] == [2]

    staff_view = await (
        await client.get(f"/api/conversations/{started['id']}", headers=account.headers)
    ).json()
    assert staff_view["metadata"]["origin"] == ORIGIN and staff_view["channel"] == "chat"


async def test_conversation_token_grants_exactly_one_conversation(client, site, base_settings):
    _, agent, _, headers = site
    mine = await start(client, agent["id"], headers)
    theirs = await start(client, agent["id"], headers)
    path = f"/public/conversations/{theirs['id']}/messages"
    secret = base_settings.ensure_jwt_secret().jwt_secret
    expired = jwt.encode(
        {
            **jwt.decode(mine["token"], options={"verify_signature": False}),
            "exp": int(time.time()) - 60,
        },
        secret,
        "HS256",
    )
    for token, status in [
        (mine["token"], 404),  # valid, but for another conversation
        (None, 401),
        ("garbage", 401),
        (expired, 401),
    ]:
        request_headers = {**headers, **({"X-Conversation-Token": token} if token else {})}
        response = await client.post(path, json={"content": "hi"}, headers=request_headers)
        assert response.status == status, token
    history = await (
        await client.get(path, headers={**headers, "X-Conversation-Token": theirs["token"]})
    ).json()
    assert history["messages"] == []


async def test_ratings(client, site):
    account, agent, _, headers = site
    started = await start(client, agent["id"], headers)
    token_headers = {**headers, "X-Conversation-Token": started["token"]}
    path = f"/public/conversations/{started['id']}/rating"
    for bad in (
        {"rating": 0},
        {"rating": 6},
        {"rating": "5"},
        {"rating": 4, "comment": "x" * 2001},
    ):
        assert (await client.post(path, json=bad, headers=token_headers)).status == 400
    first = await client.post(path, json={"rating": 2}, headers=token_headers)
    assert first.status == 201
    second = await (
        await client.post(path, json={"rating": 5, "comment": "Great"}, headers=token_headers)
    ).json()
    assert (second["rating"], second["comment"]) == (5, "Great")


async def test_attachments(client, site):
    _, agent, _, headers = site
    started = await start(client, agent["id"], headers)
    token_headers = {**headers, "X-Conversation-Token": started["token"]}
    path = f"/public/conversations/{started['id']}/attachments"
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100

    form = FormData()
    form.add_field("file", png, filename="../../etc/shot.png", content_type="image/png")
    uploaded = await client.post(path, data=form, headers=token_headers)
    assert uploaded.status == 201, await uploaded.text()
    body = await uploaded.json()
    assert (body["type"], body["name"], body["size"]) == ("image/png", "shot.png", len(png))
    fetched = await client.get(URL(body["url"]).path)
    assert fetched.status == 200 and await fetched.read() == png
    assert fetched.headers["X-Content-Type-Options"] == "nosniff"
    forged = URL(body["url"]).parent / ("0" * 32)
    assert (await client.get(forged.path)).status == 404

    message = await client.post(
        f"/public/conversations/{started['id']}/messages",
        json={"content": "see attached", "attachments": [body]},
        headers=token_headers,
    )
    assert message.status == 201

    form = FormData()
    form.add_field("file", b"MZ\x90\x00\x03binary\x00\x01", filename="evil.exe")
    refused = await client.post(path, data=form, headers=token_headers)
    assert refused.status == 415
    assert_error(await refused.json(), "UNSUPPORTED_MEDIA_TYPE")

    # A NUL in a part's header breaks the multipart format: 400, not a crash.
    malformed = await client.post(
        path,
        data=b'--b\r\nContent-Disposition: form-data; name="file"; filename="a\x00.png"'
        b"\r\n\r\n" + png + b"\r\n--b--\r\n",
        headers={**token_headers, "Content-Type": "multipart/form-data; boundary=b"},
    )
    assert malformed.status == 400
    payload = await malformed.json()
    assert_error(payload, "VALIDATION_ERROR")
    assert "body" in payload["details"]["fields"]


async def test_oversized_upload(make_client, account):
    hub = await make_client(max_upload_bytes=1000)
    owner = await signup(hub)
    agent = await make_agent(hub, owner)
    key = await make_key(hub, owner, agent["id"])
    headers = {"Authorization": f"Bearer {key['key']}"}
    started = await start(hub, agent["id"], headers)
    form = FormData()
    form.add_field("file", b"a" * 5000, filename="big.txt")
    response = await hub.post(
        f"/public/conversations/{started['id']}/attachments",
        data=form,
        headers={**headers, "X-Conversation-Token": started["token"]},
    )
    assert response.status == 413
    assert_error(await response.json(), "PAYLOAD_TOO_LARGE")


async def test_public_rate_limit_per_ip(make_client):
    hub = await make_client(public_ip_rate_limit_per_hour=3)
    owner = await signup(hub)
    agent = await make_agent(hub, owner)
    key = await make_key(hub, owner, agent["id"])
    headers = {"Authorization": f"Bearer {key['key']}"}
    statuses = [
        (await hub.get(f"/public/agents/{agent['id']}", headers=headers)).status for _ in range(4)
    ]
    assert statuses == [200, 200, 200, 429]


async def test_conversation_started_event_fires_once(client, site):
    _, agent, _, headers = site
    seen = []

    async def record(event):
        if event.type == "conversation.started":
            seen.append(event.data["id"])

    client.app[SERVICES].events.subscribe(record)
    started = await start(client, agent["id"], headers)
    for _ in range(50):
        if started["id"] in seen:
            break
        await asyncio.sleep(0.02)
    assert seen.count(started["id"]) == 1


async def test_a_new_conversation_notifies_owners_and_admins(client, site):
    account, agent, _, headers = site
    started = await start(client, agent["id"], headers)
    listed = await (await client.get("/api/notifications", headers=account.headers)).json()
    [notification] = [n for n in listed["notifications"] if n["type"] == "new_conversation"]
    assert notification["data"] == {"conversation_id": started["id"], "agent_id": agent["id"]}
    assert notification["title"] == "A new chat conversation started"


async def test_origins_are_compared_as_browsers_send_them(client, account):
    """An allowed origin written with its scheme's default port, or in capitals,
    is the origin browsers send without them; another port is another origin."""
    agent = await make_agent(client, account)
    key = await make_key(client, account, agent["id"], origins=("https://Shop.example.com:443",))
    assert key["allowed_origins"] == ["https://shop.example.com"]
    for origin, status in [
        ("https://shop.example.com", 200),
        ("https://SHOP.example.com:443", 200),
        ("https://shop.example.com:8443", 403),
        ("http://shop.example.com", 403),
    ]:
        response = await client.get(
            f"/public/agents/{agent['id']}",
            headers={"Authorization": f"Bearer {key['key']}", "Origin": origin},
        )
        assert response.status == status, origin
