"""Conversations and messages REST: paging, filters, seq, events, isolation."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from hub.conversations import append_message
from hub.services import SERVICES
from hub.store import conversations
from tests.helpers import assert_error, signup


async def make_conversation(client, account, **fields):
    db = client.app[SERVICES].db
    company_id = uuid.UUID(account.company_id)
    async with db.tenant(company_id) as conn:
        return await conversations.create(conn, company_id=company_id, agent_id=None, **fields)


async def add_message(client, account, conversation_id, sender_type="user", content="hi", **kw):
    db = client.app[SERVICES].db
    company_id = uuid.UUID(account.company_id)
    async with db.tenant(company_id) as conn:
        message, _ = await append_message(
            db,
            conn,
            company_id=company_id,
            conversation_id=conversation_id,
            sender_type=sender_type,
            content=content,
            **kw,
        )
    return message


async def set_started(client, conversation_id, when):
    async with client.app[SERVICES].db.system() as conn:
        await conn.execute(
            "UPDATE conversations SET started_at = $2 WHERE id = $1", conversation_id, when
        )


async def test_list_filters_paging_and_total(client, account):
    agent = await (
        await client.post("/api/agents", json={"name": "A"}, headers=account.headers)
    ).json()
    made = []
    for i in range(7):
        channel = ("chat", "voice", "phone")[i % 3]
        conversation = await make_conversation(client, account, channel=channel)
        if i < 2:
            async with client.app[SERVICES].db.system() as conn:
                await conn.execute(
                    "UPDATE conversations SET agent_id = $2 WHERE id = $1",
                    conversation["id"],
                    uuid.UUID(agent["id"]),
                )
        await set_started(client, conversation["id"], datetime(2026, 3, 1 + i, 12, tzinfo=UTC))
        made.append(conversation)

    page = await (
        await client.get("/api/conversations?limit=3&offset=0", headers=account.headers)
    ).json()
    assert page["total"] == 7 and len(page["conversations"]) == 3
    assert [c["id"] for c in page["conversations"]] == [str(c["id"]) for c in made[::-1][:3]]
    rest = await (
        await client.get("/api/conversations?limit=50&offset=3", headers=account.headers)
    ).json()
    assert len(rest["conversations"]) == 4 and rest["total"] == 7

    async def total(query: str) -> int:
        response = await client.get(f"/api/conversations?{query}", headers=account.headers)
        assert response.status == 200, await response.text()
        return (await response.json())["total"]

    assert await total("channel=voice") == 2
    assert await total(f"agent_id={agent['id']}") == 2
    assert await total("startDate=2026-03-02&endDate=2026-03-04") == 3
    assert await total("startDate=2026-03-07") == 1
    assert await total("endDate=2026-03-01") == 1
    # 2026-03-01T12:00Z is 2026-03-02 in Tokyo.
    assert await total("startDate=2026-03-02&endDate=2026-03-02&tz=Asia/Tokyo") == 1
    assert await total("status=ended") == 0
    assert await total(f"contact_id={uuid.uuid4()}") == 0


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=51",
        "limit=-1",
        "limit=ten",
        "offset=-1",
        "status=closed",
        "channel=fax",
        "agent_id=nope",
        "startDate=2026-13-01",
        "startDate=2026-03-05&endDate=2026-03-01",
        "startDate=2025-01-01&endDate=2026-03-01",
        "tz=Mars/Olympus",
    ],
)
async def test_bad_list_parameters_are_400(client, account, query):
    response = await client.get(f"/api/conversations?{query}", headers=account.headers)
    assert response.status == 400, query
    assert_error(await response.json(), "VALIDATION_ERROR")


async def test_get_and_patch_status_tags_metadata(client, account):
    conversation = await make_conversation(client, account, metadata={"source": "website"})
    path = f"/api/conversations/{conversation['id']}"
    got = await (await client.get(path, headers=account.headers)).json()
    assert got["status"] == "active" and got["ended_at"] is None
    assert got["metadata"] == {"source": "website"}

    ended = await client.patch(
        path, json={"status": "ended", "tags": ["vip"]}, headers=account.headers
    )
    body = await ended.json()
    assert ended.status == 200 and body["status"] == "ended" and body["ended_at"]
    assert body["tags"] == ["vip"] and body["metadata"] == {"source": "website"}

    archived = await (
        await client.patch(path, json={"status": "archived"}, headers=account.headers)
    ).json()
    assert archived["ended_at"] == body["ended_at"]  # stamped once
    reopened = await (
        await client.patch(path, json={"status": "active"}, headers=account.headers)
    ).json()
    assert reopened["ended_at"] is None

    for bad in (
        {"status": "closed"},
        {"tags": "vip"},
        {"tags": [""]},
        {"status": None},
        {"metadata": []},
        {"id": str(uuid.uuid4())},
    ):
        response = await client.patch(path, json=bad, headers=account.headers)
        assert response.status == 400, bad
    assert (await (await client.get(path, headers=account.headers)).json()) == reopened


async def test_messages_in_order_with_seq_paging(client, account):
    conversation = await make_conversation(client, account)
    for i in range(5):
        await add_message(client, account, conversation["id"], content=f"m{i}")
    path = f"/api/conversations/{conversation['id']}/messages"
    all_messages = (await (await client.get(path, headers=account.headers)).json())["messages"]
    assert [m["seq"] for m in all_messages] == [1, 2, 3, 4, 5]
    assert [m["content"] for m in all_messages] == ["m0", "m1", "m2", "m3", "m4"]
    assert set(all_messages[0]) >= {"id", "conversation_id", "sender_type", "content", "created_at"}

    after = await (await client.get(f"{path}?after_seq=3", headers=account.headers)).json()
    assert [m["seq"] for m in after["messages"]] == [4, 5]
    before = await (
        await client.get(f"{path}?before_seq=5&limit=2", headers=account.headers)
    ).json()
    assert [m["seq"] for m in before["messages"]] == [3, 4]
    for query in ("limit=0", "limit=201", "after_seq=-1", "before_seq=0"):
        assert (await client.get(f"{path}?{query}", headers=account.headers)).status == 400


async def test_seq_is_gap_free_under_concurrent_appends(client, account):
    conversation = await make_conversation(client, account)
    await asyncio.gather(
        *(add_message(client, account, conversation["id"], content=str(i)) for i in range(20))
    )
    path = f"/api/conversations/{conversation['id']}/messages?limit=200"
    seqs = [
        m["seq"]
        for m in (await (await client.get(path, headers=account.headers)).json())["messages"]
    ]
    assert seqs == list(range(1, 21))


async def test_client_id_stores_a_message_once(client, account):
    conversation = await make_conversation(client, account)
    first = await add_message(client, account, conversation["id"], client_id="c-1")
    again = await add_message(client, account, conversation["id"], client_id="c-1")
    assert first["id"] == again["id"]


async def test_staff_message_is_stored_as_human_and_published(client, account):
    conversation = await make_conversation(client, account)
    received = []

    async def on_event(event):
        if event.type == "message.created":
            received.append(event)

    client.app[SERVICES].events.subscribe(on_event)
    response = await client.post(
        f"/api/conversations/{conversation['id']}/messages",
        json={
            "content": "A person here.",
            "attachments": [
                {
                    "url": "https://example.com/file.pdf",
                    "type": "application/pdf",
                    "name": "document.pdf",
                    "size": 1024000,
                }
            ],
        },
        headers=account.headers,
    )
    assert response.status == 201, await response.text()
    message = await response.json()
    assert message["sender_type"] == "human" and message["sender_id"] == account.user_id
    assert message["attachments"][0]["name"] == "document.pdf" and message["seq"] == 1
    for _ in range(50):
        if any(e.data["id"] == message["id"] for e in received):
            break
        await asyncio.sleep(0.02)
    [event] = [e for e in received if e.data["id"] == message["id"]]
    assert str(event.company_id) == account.company_id


@pytest.mark.parametrize(
    "body, field",
    [
        ({"content": ""}, "body"),
        ({"content": "x" * 10_001}, "content"),
        (
            {
                "content": "x",
                "attachments": [{"url": "ftp://x/y", "type": "a/b", "name": "n", "size": 1}],
            },
            "attachments.0.url",
        ),
        (
            {
                "content": "x",
                "attachments": [
                    {"url": "javascript:alert(1)", "type": "a/b", "name": "n", "size": 1}
                ],
            },
            "attachments.0.url",
        ),
        (
            {
                "content": "x",
                "attachments": [{"url": "https://x/y", "type": "pdf", "name": "n", "size": 1}],
            },
            "attachments.0.type",
        ),
        (
            {
                "content": "x",
                "attachments": [{"url": "https://x/y", "type": "a/b", "name": "", "size": 1}],
            },
            "attachments.0.name",
        ),
        (
            {
                "content": "x",
                "attachments": [{"url": "https://x/y", "type": "a/b", "name": "n", "size": -1}],
            },
            "attachments.0.size",
        ),
        (
            {
                "content": "x",
                "attachments": [
                    {"url": "https://x/y", "type": "a/b", "name": "n", "size": 26 * 1024 * 1024}
                ],
            },
            "attachments.0.size",
        ),
        ({"content": "x", "sender_type": "agent"}, "sender_type"),
    ],
)
async def test_bad_messages_are_refused_and_not_stored(client, account, body, field):
    conversation = await make_conversation(client, account)
    path = f"/api/conversations/{conversation['id']}/messages"
    response = await client.post(path, json=body, headers=account.headers)
    assert response.status == 400
    payload = await response.json()
    assert_error(payload, "VALIDATION_ERROR")
    assert any(f.startswith(field) for f in payload["details"]["fields"]), payload
    assert (await (await client.get(path, headers=account.headers)).json())["messages"] == []


async def test_cannot_write_into_an_ended_conversation(client, account):
    conversation = await make_conversation(client, account)
    path = f"/api/conversations/{conversation['id']}"
    await client.patch(path, json={"status": "ended"}, headers=account.headers)
    response = await client.post(
        f"{path}/messages", json={"content": "hi"}, headers=account.headers
    )
    assert response.status == 409
    assert_error(await response.json(), "CONFLICT")


async def test_another_company_sees_nothing(client, account):
    conversation = await make_conversation(client, account)
    await add_message(client, account, conversation["id"], content="private")
    other = await signup(client)
    base = f"/api/conversations/{conversation['id']}"
    listed = await (await client.get("/api/conversations", headers=other.headers)).json()
    assert listed == {"conversations": [], "total": 0}
    for method, path, kwargs in [
        ("GET", base, {}),
        ("PATCH", base, {"json": {"status": "ended"}}),
        ("GET", f"{base}/messages", {}),
        ("POST", f"{base}/messages", {"json": {"content": "injected"}}),
    ]:
        response = await client.request(method, path, headers=other.headers, **kwargs)
        assert response.status == 404, (method, path)
        assert_error(await response.json(), "NOT_FOUND")
    messages = await (await client.get(f"{base}/messages", headers=account.headers)).json()
    assert [m["content"] for m in messages["messages"]] == ["private"]
    got = await (await client.get(base, headers=account.headers)).json()
    assert got["status"] == "active"


async def test_reply_records_its_response_time(client, account):
    conversation = await make_conversation(client, account)
    db = client.app[SERVICES].db
    company_id = uuid.UUID(account.company_id)
    await add_message(client, account, conversation["id"], content="question")
    await add_message(client, account, conversation["id"], content="more detail")
    async with db.tenant(company_id) as conn:
        # The oldest unanswered user message arrived 1.5 s before this transaction.
        await conn.execute(
            "UPDATE conversations SET awaiting_reply_since = now() - interval '1500 ms'"
            " WHERE id = $1",
            conversation["id"],
        )
        reply, _ = await append_message(
            db,
            conn,
            company_id=company_id,
            conversation_id=conversation["id"],
            sender_type="agent",
            content="answer",
            ai_metadata={"model": "gpt-4o-mini", "prompt_tokens": 100, "completion_tokens": 20},
        )
        row = await conn.fetchrow(
            "SELECT response_ms, model, prompt_tokens, completion_tokens"
            " FROM messages WHERE id = $1",
            reply["id"],
        )
        waiting = await conn.fetchval(
            "SELECT awaiting_reply_since FROM conversations WHERE id = $1", conversation["id"]
        )
    assert dict(row) == {
        "response_ms": 1500,
        "model": "gpt-4o-mini",
        "prompt_tokens": 100,
        "completion_tokens": 20,
    }
    assert waiting is None
    assert datetime.now(UTC) - reply["created_at"] < timedelta(minutes=5)


async def test_numbers_beyond_what_postgres_holds_are_refused(client):
    """Sequence numbers are PostgreSQL integers and offsets are bounded: a
    bigger one is a 400 (or a refused ack), not a 500 from the query."""
    import socketio

    from bench.security.target import ORIGIN, Target
    from bench.security.tenants import build_tenant

    tenant = await build_tenant(Target.of(client), "Seq", settle=False)
    conversation = tenant.conversation
    visitor = {**tenant.public, "X-Conversation-Token": conversation.extra["token"]}
    for path, query, headers in [
        ("/api/conversations", {"offset": str(10**22)}, tenant.headers),
        (
            f"/api/conversations/{conversation.id}/messages",
            {"after_seq": "2147483648"},
            tenant.headers,
        ),
        (
            f"/api/conversations/{conversation.id}/messages",
            {"before_seq": str(2**40)},
            tenant.headers,
        ),
        (f"/public/conversations/{conversation.id}/messages", {"after_seq": str(2**31)}, visitor),
    ]:
        response = await client.get(path, params=query, headers=headers)
        assert response.status == 400, (path, query, await response.text())
        assert_error(await response.json(), "VALIDATION_ERROR")

    socket = socketio.AsyncClient(reconnection=False)
    await socket.connect(
        str(client.make_url("/")),
        namespaces=["/widget"],
        auth={"token": conversation.extra["token"]},
        headers={"Origin": ORIGIN},
        transports=["websocket"],
    )
    try:
        ack = await socket.call(
            "conversation:resume", {"after_seq": 2**31}, namespace="/widget", timeout=10
        )
    finally:
        await socket.disconnect()
    assert ack["ok"] is False and ack["code"] == "VALIDATION_ERROR", ack
