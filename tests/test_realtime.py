"""Socket.IO end to end with python-socketio's client: the widget's turn,
resume, limits, takeover from the dashboard, and two web processes on Redis."""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
import pytest
import redis.asyncio as aioredis
import socketio

from fakes.openai import Reply
from hub.services import SERVICES
from tests.helpers import SocketClient, signup

ORIGIN = "https://shop.example.com"


@pytest.fixture
async def hub(fake, make_client):  # fake first: it must outlive the hub
    return await make_client(
        openai_api_key="sk-test",
        openai_base_url=fake.base_url,
        socket_messages_per_minute=5,
        socket_ping_interval=5,
    )


async def visitor_setup(hub, account=None, tools=()):
    account = account or await signup(hub)
    agent = await (
        await hub.post(
            "/api/agents",
            json={"name": "Live", "model": "gpt-live", "tools": list(tools)},
            headers=account.headers,
        )
    ).json()
    key = await (
        await hub.post(
            f"/api/agents/{agent['id']}/keys",
            json={"allowed_origins": [ORIGIN]},
            headers=account.headers,
        )
    ).json()
    public = {"Authorization": f"Bearer {key['key']}", "Origin": ORIGIN}
    started = await (
        await hub.post("/public/conversations", json={"agent_id": agent["id"]}, headers=public)
    ).json()
    return account, agent, key, started


@pytest.fixture
async def clients():
    made: list[SocketClient] = []

    def make(namespace="/widget") -> SocketClient:
        client = SocketClient(namespace, origin=ORIGIN)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


async def test_refused_connections_get_the_standard_error(hub, clients):
    _, _, _, started = await visitor_setup(hub)
    for token, origin, code in [
        ("not-a-token", ORIGIN, "INVALID_TOKEN"),
        (None, ORIGIN, "INVALID_TOKEN"),
        (started["token"], "https://evil.example.net", "ORIGIN_NOT_ALLOWED"),
    ]:
        client = clients()
        errors = []
        client.sio.on("connect_error", errors.append, namespace="/widget")
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(hub, token, origin=origin)
        await asyncio.sleep(0.05)
        # As browsers see it: err.message, and err.data with the standard error.
        assert errors and errors[0]["data"]["code"] == code, errors
        assert set(errors[0]["data"]) == {"error", "code", "details"}


@pytest.mark.parametrize("transports", [("websocket",), ("polling",)])
async def test_a_turn_over_the_widget_socket(hub, fake, clients, transports):
    _, _, _, started = await visitor_setup(hub)
    fake.then(
        Reply(
            text="We ship worldwide within five working days, tracked and insured.",
            chunk_delay=0.01,
        )
    )
    visitor = clients()
    await visitor.connect(hub, started["token"], transports=transports)
    ack = await visitor.call("message:send", {"content": "Do you ship abroad?", "client_id": "m1"})
    assert ack["ok"] is True and ack["message"]["seq"] == 1
    done = await visitor.wait_for("message:done")
    assert done["content"].startswith("We ship worldwide") and done["sender_type"] == "agent"
    deltas = visitor.events["message:delta"]
    assert [d["index"] for d in deltas] == list(range(len(deltas)))
    assert "".join(d["delta"] for d in deltas) == done["content"]
    assert all(d["message_id"] == done["id"] for d in deltas)
    await visitor.wait_for("agent:typing", lambda d: d["typing"] is False)
    assert [t["typing"] for t in visitor.events["agent:typing"]] == [True, False]
    # A retried send with the same client_id is not stored twice.
    again = await visitor.call(
        "message:send", {"content": "Do you ship abroad?", "client_id": "m1"}
    )
    assert again["message"]["id"] == ack["message"]["id"]


async def test_resume_returns_exactly_what_was_missed(hub, fake, clients):
    account, _, _, started = await visitor_setup(hub)
    visitor = clients()
    await visitor.connect(hub, started["token"])
    await visitor.call("message:send", {"content": "first"})
    await visitor.wait_for("message:done")
    await visitor.close()
    # While the visitor is away, staff write twice.
    for text in ("staff one", "staff two"):
        response = await hub.post(
            f"/api/conversations/{started['id']}/messages",
            json={"content": text},
            headers=account.headers,
        )
        assert response.status == 201
    back = clients()
    await back.connect(hub, started["token"])
    missed = await back.call("conversation:resume", {"after_seq": 2})
    assert [(m["seq"], m["content"]) for m in missed["messages"]] == [
        (3, "staff one"),
        (4, "staff two"),
    ]
    bad = await back.call("conversation:resume", {"after_seq": -1})
    assert bad["ok"] is False and bad["code"] == "VALIDATION_ERROR"


async def test_limits_and_bad_payloads(hub, clients):
    _, _, _, started = await visitor_setup(hub)
    visitor = clients()
    await visitor.connect(hub, started["token"])
    too_long = await visitor.call("message:send", {"content": "x" * 4001})
    assert too_long["ok"] is False and too_long["code"] == "VALIDATION_ERROR"
    for bad in (None, "hello", {"content": 5}, {"content": "hi", "evil": True}):
        reply = await visitor.call("message:send", bad)
        assert reply["ok"] is False and reply["code"] == "VALIDATION_ERROR", bad
    unknown = await visitor.call("admin:delete_everything", {})
    assert unknown["code"] == "UNKNOWN_EVENT"
    # Invalid sends count against the flood limit too, and the limit is the
    # conversation's: a fresh conversation for this part, over two connections.
    _, _, _, fresh = await visitor_setup(hub)
    tabs = [clients(), clients()]
    for tab in tabs:
        await tab.connect(hub, fresh["token"])
    results = [await tabs[i % 2].call("message:send", {"content": f"m{i}"}) for i in range(6)]
    assert [r["ok"] for r in results] == [True] * 5 + [False]
    assert results[-1]["code"] == "RATE_LIMITED"
    error = await tabs[1].wait_for("error", lambda e: e["code"] == "RATE_LIMITED")
    assert set(error) == {"error", "code", "details"}


async def test_every_event_counts_against_the_connection(hub, clients):
    """Typing, resume and made-up events are bounded like messages: 3 × the
    message limit a minute per connection, refused in the ack."""
    _, _, _, started = await visitor_setup(hub)
    visitor = clients()
    await visitor.connect(hub, started["token"])
    acks = [await visitor.call("typing", {"typing": i % 2 == 0}) for i in range(16)]
    assert [a["ok"] for a in acks] == [True] * 15 + [False]
    assert set(acks[-1]) == {"ok", "error", "code", "details"}
    assert acks[-1]["code"] == "RATE_LIMITED"
    for event in ("conversation:resume", "made:up"):
        refused = await visitor.call(event, {"after_seq": 0})
        assert refused["code"] == "RATE_LIMITED", event


async def test_connection_attempts_per_address(make_client, clients):
    """Attempts count before the token is read, good tokens and bad alike:
    beyond the limit the refusal is the standard error in connect_error."""
    hub = await make_client(socket_connects_per_minute=3)
    _, _, _, started = await visitor_setup(hub)
    outcomes = []
    for token in [started["token"], "not-a-token"] * 5:
        client = clients()
        errors = []
        client.sio.on("connect_error", errors.append, namespace="/widget")
        try:
            await client.connect(hub, token)
            outcomes.append("connected")
            await client.close()
        except socketio.exceptions.ConnectionError:
            await asyncio.sleep(0.05)
            assert set(errors[0]["data"]) == {"error", "code", "details"}
            outcomes.append(errors[0]["data"]["code"])
    # Fixed one-minute windows: ten attempts span at most two, so at most six pass.
    assert outcomes.count("RATE_LIMITED") >= 4, outcomes
    assert set(outcomes) <= {"connected", "INVALID_TOKEN", "RATE_LIMITED"}
    assert outcomes[0] == "connected"
    assert (await hub.get("/healthz")).status == 200


async def test_dashboard_sees_the_company_live_and_takes_over(hub, fake, clients):
    account, _, _, started = await visitor_setup(hub)
    staff = clients("/dashboard")
    await staff.connect(hub, account.token)
    outsider = clients("/dashboard")
    await outsider.connect(hub, (await signup(hub)).token)
    visitor = clients()
    await visitor.connect(hub, started["token"])

    await visitor.call("message:send", {"content": "Hello?"})
    await staff.wait_for("message:new", lambda m: m["content"] == "Hello?")
    await staff.wait_for("message:new", lambda m: m["sender_type"] == "agent")
    await visitor.wait_for("message:done")
    requests_before = len(fake.requests)

    taken = await staff.call("conversation:takeover", {"conversation_id": started["id"]})
    assert taken["ok"] is True, taken
    await visitor.wait_for("conversation:human_joined")
    await visitor.call("message:send", {"content": "Are you a person?"})
    await staff.wait_for("message:new", lambda m: m["content"] == "Are you a person?")
    reply = await staff.call(
        "message:send", {"conversation_id": started["id"], "content": "Yes, I'm Ana."}
    )
    assert reply["ok"] is True and reply["message"]["sender_type"] == "human"
    heard = await visitor.wait_for("message:new", lambda m: m["sender_type"] == "human")
    assert heard["content"] == "Yes, I'm Ana."
    await hub.app[SERVICES].jobs.join()
    assert len(fake.requests) == requests_before  # the AI stayed silent

    released = await staff.call("conversation:release", {"conversation_id": started["id"]})
    assert released["ok"] is True
    await visitor.wait_for("conversation:human_left")
    await visitor.call("message:send", {"content": "Thanks, bot again?"})
    await visitor.wait_for(
        "message:done",
        lambda m: m["reply_to"] is not None and len(visitor.events["message:done"]) == 2,
    )

    assert not any(m["content"] == "Hello?" for m in outsider.events["message:new"])
    other = await outsider.call("conversation:takeover", {"conversation_id": started["id"]})
    assert other["ok"] is False and other["code"] == "NOT_FOUND"


async def test_takeover_stops_a_reply_in_flight(hub, fake, clients):
    account, _, _, started = await visitor_setup(hub)
    fake.then(Reply(text="this reply is far too slow to finish " * 5, chunk_delay=0.2))
    staff = clients("/dashboard")
    await staff.connect(hub, account.token)
    visitor = clients()
    await visitor.connect(hub, started["token"])
    await visitor.call("message:send", {"content": "Tell me everything"})
    await visitor.wait_for("message:delta")
    await staff.call("conversation:takeover", {"conversation_id": started["id"]})
    await visitor.wait_for("agent:typing", lambda d: d["typing"] is False)
    await hub.app[SERVICES].jobs.join()
    messages = await (
        await hub.get(f"/api/conversations/{started['id']}/messages", headers=account.headers)
    ).json()
    assert [m["sender_type"] for m in messages["messages"]] == ["user"]


async def test_handoff_and_notifications_reach_the_dashboard(hub, fake, clients):
    account, _, _, started = await visitor_setup(hub, tools=["handoff_to_human"])
    staff = clients("/dashboard")
    await staff.connect(hub, account.token)
    visitor = clients()
    await visitor.connect(hub, started["token"])
    fake.then(
        Reply(tool_calls=[{"name": "handoff_to_human", "arguments": {"reason": "Angry"}}]),
        Reply(text="A colleague will be with you shortly."),
    )
    await visitor.call("message:send", {"content": "I want a human!"})
    handoff = await staff.wait_for("handoff:requested")
    assert handoff == {"conversation_id": started["id"], "reason": "Angry"}
    note = await staff.wait_for("notification:new")
    assert note["type"] == "handoff_requested"
    # Unread: the new conversation's notification and this one.
    unread = await staff.wait_for("notification:unread", lambda d: d["count"] == 2)
    assert unread["count"] == 2
    # The tool's record is for staff; the visitor sees the reply only.
    await visitor.wait_for("message:done")
    assert not any(m["sender_type"] == "system" for m in visitor.events["message:new"])
    assert any(m["sender_type"] == "system" for m in staff.events["message:new"])


async def two_processes_on_redis(make_client, redis_url, clients):
    """Two web processes sharing a Redis: a visitor on the first, staff on the second."""
    prefix = f"rt-{uuid.uuid4().hex[:8]}"
    first = await make_client(redis_url=redis_url, redis_prefix=prefix)
    second = await make_client(redis_url=redis_url, redis_prefix=prefix)
    account, _, _, started = await visitor_setup(first)
    visitor = clients()
    await visitor.connect(first, started["token"])
    staff = clients("/dashboard")
    await staff.connect(second, account.token)
    return prefix, started, visitor, staff


async def test_two_web_processes_on_redis(make_client, redis_url, clients):
    _, started, visitor, staff = await two_processes_on_redis(make_client, redis_url, clients)

    await visitor.call("message:send", {"content": "Hi from process one"})
    await staff.wait_for("message:new", lambda m: m["content"] == "Hi from process one")
    # Scaled out, the web processes only enqueue; a worker would answer. Staff do.
    await staff.call("message:send", {"conversation_id": started["id"], "content": "Hi from two"})
    heard = await visitor.wait_for("message:new", lambda m: m["content"] == "Hi from two")
    assert heard["sender_type"] == "human"


async def test_a_lost_bus_subscription_makes_every_client_catch_up(make_client, redis_url, clients):
    prefix, _, visitor, staff = await two_processes_on_redis(make_client, redis_url, clients)

    # What a Redis restart does to each process: its subscription is cut.
    redis = aioredis.from_url(redis_url)
    try:
        listeners = [c for c in await redis.client_list() if c["name"] == f"{prefix}:events"]
        assert len(listeners) == 2
        for listener in listeners:
            await redis.client_kill_filter(_id=listener["id"])
    finally:
        await redis.aclose()

    await visitor.wait_for("sync")
    await staff.wait_for("sync")
    await visitor.call("message:send", {"content": "Still there?"})
    await staff.wait_for("message:new", lambda m: m["content"] == "Still there?")


async def test_waiting_for_a_person_until_staff_take_over(hub, fake, clients):
    account, agent, key, waiting = await visitor_setup(hub, tools=["handoff_to_human"])
    public = {"Authorization": f"Bearer {key['key']}", "Origin": ORIGIN}
    calm = await (
        await hub.post("/public/conversations", json={"agent_id": agent["id"]}, headers=public)
    ).json()
    staff = clients("/dashboard")
    await staff.connect(hub, account.token)
    visitor = clients()
    await visitor.connect(hub, waiting["token"])
    fake.then(
        Reply(tool_calls=[{"name": "handoff_to_human", "arguments": {"reason": "Billing"}}]),
        Reply(text="A colleague is coming."),
    )
    await visitor.call("message:send", {"content": "A person, please"})
    await staff.wait_for("handoff:requested")

    async def listed(**query):
        response = await hub.get("/api/conversations", params=query, headers=account.headers)
        assert response.status == 200, await response.text()
        return {c["id"]: c for c in (await response.json())["conversations"]}

    only = await listed(waiting="true")
    assert list(only) == [waiting["id"]]
    assert only[waiting["id"]]["ai_paused"] is True
    assert only[waiting["id"]]["handoff_requested_at"] is not None
    others = await listed(waiting="false")
    assert list(others) == [calm["id"]] and others[calm["id"]]["ai_paused"] is False

    # An ended conversation waits for nobody; reopened, it waits again.
    for status, waits in (("ended", False), ("active", True)):
        response = await hub.patch(
            f"/api/conversations/{waiting['id']}", json={"status": status}, headers=account.headers
        )
        assert response.status == 200
        assert (waiting["id"] in await listed(waiting="true")) is waits

    # A person takes over: no longer waiting, the AI still silent.
    taken = await staff.call("conversation:takeover", {"conversation_id": waiting["id"]})
    assert taken["conversation"]["handoff_requested_at"] is None
    assert taken["conversation"]["ai_paused"] is True
    # ... and the dashboards hear of it.
    await staff.wait_for(
        "conversation:updated",
        lambda c: c["id"] == waiting["id"] and c["ai_paused"] and not c["handoff_requested_at"],
    )
    assert await listed(waiting="true") == {}
    await staff.call("conversation:release", {"conversation_id": waiting["id"]})
    assert (await listed())[waiting["id"]]["ai_paused"] is False


async def test_document_status_changes_reach_the_dashboard(hub, clients):
    account = await signup(hub)
    staff = clients("/dashboard")
    await staff.connect(hub, account.token)
    outsider = clients("/dashboard")
    await outsider.connect(hub, (await signup(hub)).token)
    form = aiohttp.FormData()
    form.add_field("file", b"Opening hours: nine to five.", filename="hours.txt")
    response = await hub.post("/api/knowledge-base/upload", data=form, headers=account.headers)
    document = await response.json()
    # Queued, processing, processed: one event each, carrying only the id.
    await staff.wait_for("document:updated", lambda _: len(staff.events["document:updated"]) >= 3)
    assert staff.events["document:updated"] == [{"document_id": document["id"]}] * 3
    detail = await (
        await hub.get(f"/api/knowledge-base/{document['id']}", headers=account.headers)
    ).json()
    assert detail["status"] == "processed"
    await hub.delete(f"/api/knowledge-base/{document['id']}", headers=account.headers)
    await staff.wait_for("document:updated", lambda _: len(staff.events["document:updated"]) == 4)
    assert outsider.events["document:updated"] == []


async def test_revoking_a_key_cuts_the_sockets_connected_with_it(hub, clients):
    account, agent, key, started = await visitor_setup(hub)
    visitor = clients()
    await visitor.connect(hub, started["token"])
    assert (await visitor.call("typing", {"typing": True}))["ok"] is True
    revoked = await hub.delete(
        f"/api/agents/{agent['id']}/keys/{key['id']}", headers=account.headers
    )
    assert revoked.status == 200
    error = await visitor.wait_for("error")
    assert error["code"] == "INVALID_KEY"
    for _ in range(100):
        if not visitor.sio.namespaces:
            break
        await asyncio.sleep(0.02)
    assert not visitor.sio.namespaces  # disconnected by the server


async def test_staff_actions_over_the_socket_are_audited(hub, clients):
    account, _, _, started = await visitor_setup(hub)
    staff = clients("/dashboard")
    await staff.connect(hub, account.token)
    conversation = {"conversation_id": started["id"]}
    assert (await staff.call("conversation:takeover", conversation))["ok"] is True
    sent = await staff.call("message:send", {**conversation, "content": "Hello, I'm Ana."})
    assert sent["ok"] is True
    assert (await staff.call("conversation:release", conversation))["ok"] is True
    missing = {"conversation_id": str(uuid.uuid4())}
    assert (await staff.call("conversation:takeover", missing))["ok"] is False
    log = await (await hub.get("/api/audit-log?limit=4", headers=account.headers)).json()
    assert [
        (e["method"], e["path"], e["resource_id"], e["status"], e["user_id"])
        for e in reversed(log["entries"])
    ] == [
        ("SOCKET", "/dashboard/conversation:takeover", started["id"], 200, account.user_id),
        ("SOCKET", "/dashboard/message:send", started["id"], 200, account.user_id),
        ("SOCKET", "/dashboard/conversation:release", started["id"], 200, account.user_id),
        (
            "SOCKET",
            "/dashboard/conversation:takeover",
            missing["conversation_id"],
            404,
            account.user_id,
        ),
    ]
    assert all(e["ip"] == "127.0.0.1" and e["request_id"] for e in log["entries"])
