"""The same hostile messages down both ways in — REST and Socket.IO — for a
visitor and for staff: the same answer from each, nothing stored, no
traceback in the hub's log; and frames python-socketio cannot decode are
answered too."""

from __future__ import annotations

import logging

import pytest

from hub.services import SERVICES
from tests.helpers import SocketClient, assert_error, wait_for
from tests.test_realtime import ORIGIN, visitor_setup

ATTACHMENT = {"url": "https://example.com/a.pdf", "type": "application/pdf", "name": "a.pdf"}


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


def raw_nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# name, body, the fields a VALIDATION_ERROR names (the same for a visitor and
# for staff unless the case says otherwise). Every one is refused.
HOSTILE = [
    ("NUL in content", {"content": "a\x00b"}, {"content"}),
    ("NUL in client_id", {"content": "hi", "client_id": "m\x001"}, {"client_id"}),
    (
        "NUL in an attachment name",
        {"attachments": [{**ATTACHMENT, "name": "a\x00.pdf", "size": 1}]},
        {"attachments.0.name"},
    ),
    ("escape in content", {"content": "red \x1b[31m alert"}, {"content"}),
    ("bell in content", {"content": "ding\x07"}, {"content"}),
    ("newline in client_id", {"content": "hi", "client_id": "m\n1"}, {"client_id"}),
    (
        "tab in an attachment name",
        {"attachments": [{**ATTACHMENT, "name": "a\t.pdf", "size": 1}]},
        {"attachments.0.name"},
    ),
    (
        "DEL in an attachment name",
        {"attachments": [{**ATTACHMENT, "name": "a\x7f.pdf", "size": 1}]},
        {"attachments.0.name"},
    ),
    ("10 001 characters", {"content": "x" * 10_001}, {"content"}),
    ("attachments nested 300 deep", {"content": "hi", "attachments": nested(300)}, {"attachments"}),
    ("a field nested 40 deep", {"content": "hi", "extra": nested(40)}, {"extra"}),
    ("11 attachments", {"attachments": [{**ATTACHMENT, "size": 1}] * 11}, {"attachments"}),
    (
        "an attachment over the size limit",
        {"attachments": [{**ATTACHMENT, "size": 10**12}]},
        {"attachments.0.size"},
    ),
    (
        "a size beyond 64 bits",
        {"attachments": [{**ATTACHMENT, "size": 2**70}]},
        {"attachments.0.size"},
    ),
    ("a negative size", {"attachments": [{**ATTACHMENT, "size": -1}]}, {"attachments.0.size"}),
    (
        "a javascript: url",
        {"attachments": [{**ATTACHMENT, "url": "javascript:alert(1)", "size": 1}]},
        {"attachments.0.url"},
    ),
    ("an attachment that is a string", {"attachments": ["a.pdf"]}, {"attachments.0"}),
    ("blank content", {"content": "  \n\t "}, {"body"}),
    ("content that is a number", {"content": 5}, {"content"}),
    ("an unknown field", {"content": "hi", "evil": True}, {"evil"}),
    ("a string body", "hello", {"body"}),
    ("a list body", ["hello"], {"body"}),
]
# Over the visitor's limit only.
VISITOR_ONLY = [("6 000 characters", {"content": "x" * 6_000}, {"content"})]


@pytest.fixture
async def hub(fake, make_client):  # fake first: it must outlive the hub
    # A limit no table reaches: each case is refused for what it is, not for flooding.
    return await make_client(
        openai_api_key="sk-test", openai_base_url=fake.base_url, socket_messages_per_minute=1_000
    )


@pytest.fixture
async def clients():
    made: list[SocketClient] = []

    def make(namespace: str) -> SocketClient:
        client = SocketClient(namespace, origin=ORIGIN)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


@pytest.fixture
def no_tracebacks(caplog):
    """The hub's log may warn, but holds no error and no traceback."""
    caplog.set_level(logging.WARNING)
    yield
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [f"{r.name}: {r.getMessage()}" for r in bad]


async def stored(hub, account, conversation_id: str) -> list[dict]:
    response = await hub.get(
        f"/api/conversations/{conversation_id}/messages", headers=account.headers
    )
    assert response.status == 200
    return (await response.json())["messages"]


def public_headers(key: dict, started: dict) -> dict:
    return {
        "Authorization": f"Bearer {key['key']}",
        "Origin": ORIGIN,
        "X-Conversation-Token": started["token"],
    }


def as_rest(ack: dict) -> dict:
    """An ack's error as REST renders it."""
    assert ack["ok"] is False, ack
    return {name: value for name, value in ack.items() if name != "ok"}


async def expect_same_refusal(name, fields, response, ack, error_events):
    body = await response.json()
    assert response.status == 400, (name, body)
    assert_error(body, "VALIDATION_ERROR")
    assert set(body["details"]["fields"]) == fields, (name, body)
    assert as_rest(ack) == body, name
    # The socket was also told in an `error` event, sent before the ack.
    assert error_events[-1] == body, name


async def next_error(client: SocketClient, seen: int) -> dict:
    """The first `error` event after the `seen` ones."""

    async def arrived():
        return len(client.events["error"]) > seen

    await wait_for(arrived, within=10, every=0.02)
    return client.events["error"][seen]


@pytest.mark.usefixtures("no_tracebacks")
async def test_a_visitors_hostile_messages_get_one_answer_on_both_paths(hub, clients):
    account, _, key, started = await visitor_setup(hub)
    conversation = started["id"]
    visitor = clients("/widget")
    await visitor.connect(hub, started["token"])
    rest = public_headers(key, started)
    path = f"/public/conversations/{conversation}/messages"
    for name, body, fields in HOSTILE + VISITOR_ONLY:
        response = await hub.post(path, json=body, headers=rest)
        ack = await visitor.call("message:send", body)
        await expect_same_refusal(name, fields, response, ack, visitor.events["error"])
    assert await stored(hub, account, conversation) == []


@pytest.mark.usefixtures("no_tracebacks")
async def test_a_staff_members_hostile_messages_get_one_answer_on_both_paths(hub, clients):
    account, _, _, started = await visitor_setup(hub)
    conversation = started["id"]
    staff = clients("/dashboard")
    await staff.connect(hub, account.token)
    path = f"/api/conversations/{conversation}/messages"
    for name, body, fields in HOSTILE:
        response = await hub.post(path, json=body, headers=account.headers)
        # The socket names the conversation in the payload, the route in its path.
        payload = {**body, "conversation_id": conversation} if isinstance(body, dict) else body
        ack = await staff.call("message:send", payload)
        await expect_same_refusal(name, fields, response, ack, staff.events["error"])
    assert await stored(hub, account, conversation) == []


async def test_what_each_path_accepts_it_accepts_on_the_other(hub, clients):
    """Tab, newline and carriage return are text; staff may write 6 000
    characters, as may a visitor 4 000; staff may attach files over the socket too."""
    account, _, key, started = await visitor_setup(hub)
    conversation = started["id"]
    staff = clients("/dashboard")
    await staff.connect(hub, account.token)
    visitor = clients("/widget")
    await visitor.connect(hub, started["token"])
    staff_bodies = [
        {"content": "line one\r\nline two\tand a tab"},
        {"content": "x" * 6_000},
        {"attachments": [{**ATTACHMENT, "size": 3}], "client_id": "staff-1"},
    ]
    for body in staff_bodies:
        response = await hub.post(
            f"/api/conversations/{conversation}/messages", json=body, headers=account.headers
        )
        assert response.status == 201, await response.text()
        ack = await staff.call("message:send", {**body, "conversation_id": conversation})
        assert ack["ok"] is True, ack
    visitor_body = {"content": "y" * 4_000}
    response = await hub.post(
        f"/public/conversations/{conversation}/messages",
        json=visitor_body,
        headers=public_headers(key, started),
    )
    assert response.status == 201, await response.text()
    ack = await visitor.call("message:send", visitor_body)
    assert ack["ok"] is True, ack
    await hub.app[SERVICES].jobs.join()  # the AI's turns: their replies are not counted
    people = [
        m["content"]
        for m in await stored(hub, account, conversation)
        if m["sender_type"] in ("human", "user")
    ]
    # Each twice, but the retried client_id: stored once.
    first, second, _ = (body.get("content") for body in staff_bodies)
    assert people == [first, first, second, second, "", "y" * 4_000, "y" * 4_000]


@pytest.mark.usefixtures("no_tracebacks")
@pytest.mark.parametrize("namespace", ["/widget", "/dashboard"])
async def test_frames_that_cannot_be_decoded_are_answered(hub, clients, namespace):
    account, _, key, started = await visitor_setup(hub)
    conversation = started["id"]
    client = clients(namespace)
    await client.connect(hub, started["token"] if namespace == "/widget" else account.token)
    staff_field = {"conversation_id": conversation} if namespace == "/dashboard" else {}

    # A lone surrogate: python-socketio's client writes it as the escape
    # "\ud800", which the hub's JSON decoder refuses; the ack still comes.
    ack = await client.call("message:send", {**staff_field, "content": "\ud800"})
    assert as_rest(ack)["code"] == "INVALID_JSON", ack
    rest = await hub.post(
        f"/api/conversations/{conversation}/messages"
        if namespace == "/dashboard"
        else f"/public/conversations/{conversation}/messages",
        data=b'{"content": "\\ud800"}',
        headers={
            "Content-Type": "application/json",
            **(account.headers if namespace == "/dashboard" else public_headers(key, started)),
        },
    )
    assert rest.status == 400 and (await rest.json())["code"] == "INVALID_JSON"

    # Frames no JSON encoder of a client would write, sent as they are.
    for frame in (
        f'2{namespace},["message:send",{raw_nested(1_500)}]',  # deeper than the decoder goes
        f'2{namespace},{{"not": "a list"}}',  # an event is a list
        f'2{namespace},["connect",{{}}]',  # a name python-socketio keeps for itself
    ):
        seen = len(client.events["error"])
        await client.sio.eio.send(frame)
        error = await next_error(client, seen)
        assert set(error) == {"error", "code", "details"}
        assert error["code"] in ("INVALID_JSON", "INVALID_EVENT"), (frame[:40], error)
        # Still connected, still answering.
        alive = await client.call("message:send", {**staff_field, "content": ""})
        assert as_rest(alive)["code"] == "VALIDATION_ERROR"

    assert client.sio.connected
    assert await stored(hub, account, conversation) == []


@pytest.mark.usefixtures("no_tracebacks")
async def test_a_frame_that_is_no_packet_closes_the_connection_with_a_reason(hub, clients):
    _, _, _, started = await visitor_setup(hub)
    visitor = clients("/widget")
    await visitor.connect(hub, started["token"])
    await visitor.sio.eio.send("9/widget,[]")  # no such packet type
    error = await visitor.wait_for("error")
    assert_error(error, "INVALID_FRAME")

    async def closed():
        return not visitor.sio.connected

    await wait_for(closed, within=10, every=0.05)
