"""Voice on LiveKit, the hub's side: join tokens (checked with LiveKit's own
TokenVerifier), agent dispatch and SIP phone numbers (checked against the
Twirp stand-in in fakes/livekit.py, which validates each request)."""

from __future__ import annotations

import time
import uuid

import pytest
from livekit import api

from hub.services import SERVICES
from hub.store import conversations
from hub.voice import claims
from hub.voice.claims import AGENT_NAME
from tests.helpers import assert_error, signup
from tests.test_public import ORIGIN, make_agent, make_key


@pytest.fixture
async def hub(livekit, make_client):  # livekit first: it must outlive the hub
    return await make_client(**livekit.settings())


async def make_site(hub):
    account = await signup(hub)
    agent = await make_agent(hub, account)
    key = await make_key(hub, account, agent["id"])
    headers = {"Authorization": f"Bearer {key['key']}", "Origin": ORIGIN}
    return account, agent, headers


def verify(livekit, token: str) -> api.Claims:
    return api.TokenVerifier(livekit.api_key, livekit.api_secret).verify(token)


async def test_a_visitor_token_joins_its_own_room_and_dispatches_the_agent(hub, livekit):
    account, agent, headers = await make_site(hub)
    response = await hub.get(f"/public/livekit/token?agent_id={agent['id']}", headers=headers)
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["url"] == livekit.url
    assert body["room"] == f"syntera-{body['conversation_id']}"

    token = verify(livekit, body["token"])
    assert token.identity == body["identity"]
    video = token.video
    assert video.room == body["room"] and video.room_join
    # Nothing beyond joining that room: no other room, no creating, listing or admin.
    assert not video.room_admin and not video.room_create and not video.room_list
    assert not video.room_record and not video.agent and not video.destination_room
    assert token.sip is None or not (token.sip.admin or token.sip.call)
    import jwt as pyjwt

    raw = pyjwt.decode(body["token"], options={"verify_signature": False})
    assert 0 < raw["exp"] - time.time() <= 600  # a join token lives ten minutes

    # The room it creates dispatches our agent, with claims the worker can verify.
    (dispatch,) = token.room_config.agents
    assert dispatch.agent_name == AGENT_NAME
    services = hub.app[SERVICES]
    call = claims.verify(services.settings, dispatch.metadata)
    assert call == claims.CallClaims(
        uuid.UUID(account.company_id),
        uuid.UUID(agent["id"]),
        "voice",
        conversation_id=uuid.UUID(body["conversation_id"]),
    )
    assert claims.verify(services.settings, token.room_config.metadata) == call

    # The conversation is a voice one, and the visitor can read it with their token.
    conversation = await (
        await hub.get(f"/api/conversations/{body['conversation_id']}", headers=account.headers)
    ).json()
    assert conversation["channel"] == "voice" and conversation["status"] == "active"
    history = await hub.get(
        f"/public/conversations/{body['conversation_id']}/messages",
        headers={**headers, "X-Conversation-Token": body["conversation_token"]},
    )
    assert history.status == 200


async def test_a_token_never_grants_another_room(hub, livekit):
    _, agent, headers = await make_site(hub)
    first = await (
        await hub.get(f"/public/livekit/token?agent_id={agent['id']}", headers=headers)
    ).json()
    second = await (
        await hub.get(f"/public/livekit/token?agent_id={agent['id']}", headers=headers)
    ).json()
    assert first["room"] != second["room"]
    assert verify(livekit, first["token"]).video.room == first["room"]

    # Rejoining a conversation takes its conversation token; another one's is refused.
    url = f"/public/livekit/token?agent_id={agent['id']}&conversation_id={first['conversation_id']}"
    again = await hub.get(
        url, headers={**headers, "X-Conversation-Token": first["conversation_token"]}
    )
    assert again.status == 200
    rejoin = await again.json()
    assert rejoin["room"] == first["room"] and rejoin["identity"] != first["identity"]
    for token in (second["conversation_token"], None):
        refused = await hub.get(
            url, headers={**headers, **({"X-Conversation-Token": token} if token else {})}
        )
        assert refused.status in (401, 404)
        assert_error(await refused.json(), "NOT_FOUND" if token else "INVALID_TOKEN")

    # A forged token for the room is not LiveKit's.
    forged = (
        api.AccessToken(livekit.api_key, "another secret of enough length!!")
        .with_identity("x")
        .with_grants(api.VideoGrants(room_join=True, room=first["room"]))
        .to_jwt()
    )
    with pytest.raises(Exception):  # noqa: B017 - pyjwt's InvalidSignatureError
        verify(livekit, forged)


async def test_visitor_token_refusals(hub, livekit):
    account, agent, headers = await make_site(hub)
    other_account, other_agent, other_headers = await make_site(hub)
    # Another agent than the key's.
    response = await hub.get(f"/public/livekit/token?agent_id={other_agent['id']}", headers=headers)
    assert response.status == 404
    assert_error(await response.json(), "NOT_FOUND")
    # A chat conversation is not a call.
    chat = await (
        await hub.post("/public/conversations", json={"agent_id": agent["id"]}, headers=headers)
    ).json()
    response = await hub.get(
        f"/public/livekit/token?agent_id={agent['id']}&conversation_id={chat['id']}",
        headers={**headers, "X-Conversation-Token": chat["token"]},
    )
    assert response.status == 409
    assert_error(await response.json(), "CONFLICT")
    # No key, a bad query.
    assert (await hub.get(f"/public/livekit/token?agent_id={agent['id']}")).status == 401
    response = await hub.get("/public/livekit/token?agent_id=nope", headers=headers)
    assert_error(await response.json(), "VALIDATION_ERROR")
    # Nothing was dispatched for any of that.
    assert livekit.requests == []


async def test_without_livekit_voice_is_not_configured(client, account):
    agent = await make_agent(client, account)
    key = await make_key(client, account, agent["id"])
    headers = {"Authorization": f"Bearer {key['key']}", "Origin": ORIGIN}
    for response in (
        await client.get(f"/public/livekit/token?agent_id={agent['id']}", headers=headers),
        await client.post(
            "/public/voice-bot/deploy", json={"agent_id": agent["id"]}, headers=headers
        ),
        await client.post(
            "/api/voice-bot/deploy", json={"agent_id": agent["id"]}, headers=account.headers
        ),
    ):
        assert response.status == 503
        assert_error(await response.json(), "VOICE_NOT_CONFIGURED")
    # And nothing was created.
    listed = await (await client.get("/api/conversations", headers=account.headers)).json()
    assert listed["total"] == 0


async def test_staff_listen_in_or_take_over(hub, livekit):
    account, agent, headers = await make_site(hub)
    call = await (
        await hub.get(f"/public/livekit/token?agent_id={agent['id']}", headers=headers)
    ).json()
    url = f"/api/livekit/token?conversation_id={call['conversation_id']}"
    listen = await (await hub.get(url, headers=account.headers)).json()
    token = verify(livekit, listen["token"])
    assert token.video.room == call["room"] and token.video.hidden
    assert not token.video.can_publish and not token.video.can_publish_data
    assert token.room_config is None  # staff joining never dispatches another agent

    take = await (await hub.get(url + "&mode=takeover", headers=account.headers)).json()
    token = verify(livekit, take["token"])
    assert token.video.can_publish and not token.video.hidden

    # Another company's call is not found.
    other = await signup(hub)
    response = await hub.get(url, headers=other.headers)
    assert response.status == 404
    assert_error(await response.json(), "NOT_FOUND")


async def test_deploy_dispatches_the_agent_once(hub, livekit):
    account, agent, headers = await make_site(hub)
    response = await hub.post(
        "/public/voice-bot/deploy", json={"agent_id": agent["id"]}, headers=headers
    )
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["created"] == ["conversation", "dispatch"]
    room = f"syntera-{body['conversation_id']}"
    assert body["room"] == room and body["dispatch"]["agent_name"] == AGENT_NAME

    (create,) = livekit.calls("CreateDispatch")
    assert create.body.room == room and create.body.agent_name == AGENT_NAME
    assert create.claims.video.room_admin and create.claims.video.room == room
    call = claims.verify(hub.app[SERVICES].settings, create.body.metadata)
    assert str(call.conversation_id) == body["conversation_id"] and call.channel == "voice"

    # Deploying again finds the dispatch: nothing new.
    again = await hub.post(
        "/public/voice-bot/deploy",
        json={"agent_id": agent["id"], "conversation_id": body["conversation_id"]},
        headers={**headers, "X-Conversation-Token": body["conversation_token"]},
    )
    assert again.status == 200, await again.text()
    repeat = await again.json()
    assert repeat["created"] == [] and repeat["dispatch"]["id"] == body["dispatch"]["id"]
    assert len(livekit.calls("CreateDispatch")) == 1

    # Visitors cannot route phone numbers.
    response = await hub.post(
        "/public/voice-bot/deploy",
        json={"agent_id": agent["id"], "phone_number": "+14155550100"},
        headers=headers,
    )
    assert response.status == 403
    assert_error(await response.json(), "FORBIDDEN")


async def test_a_phone_number_is_routed_to_one_company(hub, livekit):
    account = await signup(hub)
    agent = await make_agent(hub, account)
    number = f"+1415{uuid.uuid4().int % 10_000_000:07d}"
    response = await hub.post(
        "/api/voice-bot/deploy",
        json={"agent_id": agent["id"], "phone_number": number},
        headers=account.headers,
    )
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["created"] == ["sip_inbound_trunk", "sip_dispatch_rule"]
    assert body["conversation_id"] is None and body["dispatch"] is None

    trunk = livekit.trunks[body["sip_trunk_id"]]
    assert list(trunk.numbers) == [number]
    rule = livekit.rules[body["sip_dispatch_rule_id"]]
    assert list(rule.trunk_ids) == [body["sip_trunk_id"]]
    assert rule.rule.dispatch_rule_individual.room_prefix == "syntera-call-"
    (dispatch,) = rule.room_config.agents
    assert dispatch.agent_name == AGENT_NAME
    phone = claims.verify(hub.app[SERVICES].settings, dispatch.metadata)
    assert phone == claims.CallClaims(
        uuid.UUID(account.company_id), uuid.UUID(agent["id"]), "phone", phone_number=number
    )
    assert all(r.claims.sip.admin for r in livekit.requests)

    # The same company moves the number to another agent: updated in place.
    second = await make_agent(hub, account, name="Night shift")
    moved = await (
        await hub.post(
            "/api/voice-bot/deploy",
            json={"agent_id": second["id"], "phone_number": number},
            headers=account.headers,
        )
    ).json()
    assert moved["created"] == [] and moved["updated"] == ["sip_inbound_trunk", "sip_dispatch_rule"]
    assert moved["sip_trunk_id"] == body["sip_trunk_id"]
    (dispatch,) = livekit.rules[body["sip_dispatch_rule_id"]].room_config.agents
    assert claims.verify(hub.app[SERVICES].settings, dispatch.metadata).agent_id == uuid.UUID(
        second["id"]
    )

    # Another company cannot take it; LiveKit is not even asked.
    before = len(livekit.requests)
    intruder = await signup(hub)
    their_agent = await make_agent(hub, intruder)
    response = await hub.post(
        "/api/voice-bot/deploy",
        json={"agent_id": their_agent["id"], "phone_number": number},
        headers=intruder.headers,
    )
    assert response.status == 409
    assert_error(await response.json(), "CONFLICT")
    assert len(livekit.requests) == before


async def test_a_livekit_failure_changes_nothing(hub, livekit):
    account = await signup(hub)
    agent = await make_agent(hub, account)
    number = f"+1415{uuid.uuid4().int % 10_000_000:07d}"
    livekit.fail_next("CreateSIPDispatchRule")
    response = await hub.post(
        "/api/voice-bot/deploy",
        json={"agent_id": agent["id"], "phone_number": number},
        headers=account.headers,
    )
    assert response.status == 502
    body = await response.json()
    assert_error(body, "LIVEKIT_ERROR")
    assert body["details"]["livekit_code"] == "internal"
    # The trunk made before the failure was removed; the number is still free.
    assert livekit.trunks == {} and livekit.rules == {}
    services = hub.app[SERVICES]
    async with services.db.tenant(uuid.UUID(account.company_id)) as conn:
        assert await conn.fetchval("SELECT count(*) FROM voice_numbers") == 0
    retry = await hub.post(
        "/api/voice-bot/deploy",
        json={"agent_id": agent["id"], "phone_number": number},
        headers=account.headers,
    )
    assert retry.status == 200


async def test_deploy_refusals(hub, livekit):
    account = await signup(hub)
    agent = await make_agent(hub, account)
    cases = [
        ({"agent_id": agent["id"], "phone_number": "4155550100"}, 400, "VALIDATION_ERROR"),
        ({"agent_id": str(uuid.uuid4())}, 404, "NOT_FOUND"),
        ({"agent_id": agent["id"], "conversation_id": str(uuid.uuid4())}, 404, "NOT_FOUND"),
        ({"agent_id": agent["id"], "extra": 1}, 400, "VALIDATION_ERROR"),
    ]
    for body, status, code in cases:
        response = await hub.post("/api/voice-bot/deploy", json=body, headers=account.headers)
        assert response.status == status, body
        assert_error(await response.json(), code)
    # Members may dispatch to calls but not route numbers.
    services = hub.app[SERVICES]
    from hub.auth import mint_token

    member, _ = mint_token(
        services.settings,
        user_id=uuid.uuid4(),
        company_id=uuid.UUID(account.company_id),
        role="member",
        email="m@example.com",
    )
    response = await hub.post(
        "/api/voice-bot/deploy",
        json={"agent_id": agent["id"], "phone_number": "+14155550199"},
        headers={"Authorization": f"Bearer {member}"},
    )
    assert response.status == 403
    assert livekit.requests == []
    async with services.db.tenant(uuid.UUID(account.company_id)) as conn:
        rows, total = await conversations.page(
            conn, uuid.UUID(account.company_id), limit=10, offset=0
        )
    assert total == 0
