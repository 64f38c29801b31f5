"""Agent turns end to end: a stored user message becomes a stored, streamed
reply, through the real `openai` client against the fake server."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis

from agents_runtime import runtime
from agents_runtime.llm import HANDED_OFF, NO_HANDOFF, OpenAIChat
from agents_runtime.turns import TurnSettings
from fakes.openai import Reply
from hub.conversations import FAILURE_NOTICE, post_user_message, turn_job
from hub.jobs import QueuePolicy, RedisStreamQueue
from hub.services import SERVICES, close_services, open_services
from hub.store import conversations
from tests.helpers import SocketClient, signup


@pytest.fixture
async def hub(fake, make_client):  # fake first: it must outlive the hub
    return await make_client(openai_api_key="sk-test", openai_base_url=fake.base_url)


class Recorder:
    """Every event the bus delivers, for assertions on what clients would see."""

    def __init__(self, services) -> None:
        self.events = []
        services.events.subscribe(self.record)

    async def record(self, event) -> None:
        self.events.append(event)

    def of(self, kind: str, conversation_id) -> list[dict]:
        return [
            e.data
            for e in self.events
            if e.type == kind
            and e.data.get("conversation_id", e.data.get("id")) == str(conversation_id)
        ]


async def setup_conversation(hub, **agent_fields):
    account = await signup(hub)
    agent_body = {
        "name": "Support",
        "model": "gpt-test-model",
        "temperature": 0,
        "max_tokens": 321,
        "system_prompt": "You are Acme's assistant.",
        **agent_fields,
    }
    agent = await (await hub.post("/api/agents", json=agent_body, headers=account.headers)).json()
    services = hub.app[SERVICES]
    company_id = uuid.UUID(account.company_id)
    async with services.db.tenant(company_id) as conn:
        conversation = await conversations.create(
            conn, company_id=company_id, agent_id=uuid.UUID(agent["id"])
        )
    return account, agent, services, company_id, conversation["id"]


async def say(services, company_id, conversation_id, text, **kw):
    async with services.db.tenant(company_id) as conn:
        message, _ = await post_user_message(
            services,
            conn,
            company_id=company_id,
            conversation_id=conversation_id,
            content=text,
            **kw,
        )
    return message


def fast_retries(services, fake) -> None:
    services.jobs.policy.backoff = 0.01
    runtime.install(services, OpenAIChat("sk-test", fake.base_url, backoff=0.01))


async def notification_types(services, company_id) -> list[str]:
    async with services.db.tenant(company_id) as conn:
        rows = await conn.fetch("SELECT DISTINCT type FROM notifications ORDER BY type")
    return [r["type"] for r in rows]


async def transcript(hub, account, conversation_id):
    response = await hub.get(
        f"/api/conversations/{conversation_id}/messages?limit=200", headers=account.headers
    )
    return (await response.json())["messages"]


def redis_settings(base_settings, redis_url, fake, name: str):
    return base_settings.with_overrides(
        redis_url=redis_url,
        redis_prefix=f"{name}-{uuid.uuid4().hex[:8]}",
        openai_api_key="sk-test",
        openai_base_url=fake.base_url,
    )


async def company_with_conversation(services, name: str):
    """A company, an agent and a conversation, made straight in the database."""
    from hub.store import companies

    async with services.db.system() as conn:
        company_id = (await companies.create(conn, name))["id"]
    async with services.db.tenant(company_id) as conn:
        agent_id = await conn.fetchval(
            "INSERT INTO agents (company_id, name, model, temperature, max_tokens)"
            " VALUES ($1, 'A', 'gpt-test', 0, 50) RETURNING id",
            company_id,
        )
        conversation = await conversations.create(conn, company_id=company_id, agent_id=agent_id)
    return company_id, conversation["id"]


async def agent_replies(services, company_id, conversation_id, *, within: float = 5.0) -> list:
    """The AI replies' texts, once there is one (or the time is up)."""
    replies = []
    for _ in range(int(within / 0.05)):
        async with services.db.tenant(company_id) as conn:
            replies = await conn.fetch(
                "SELECT content FROM messages WHERE conversation_id = $1"
                " AND sender_type = 'agent' ORDER BY seq",
                conversation_id,
            )
        if replies:
            break
        await asyncio.sleep(0.05)
    return [r["content"] for r in replies]


async def test_a_turn_streams_and_stores_the_reply(hub, fake):
    account, agent, services, company_id, conversation_id = await setup_conversation(hub)
    recorder = Recorder(services)
    fake.then(
        Reply(
            text="Hello! Our refund window is thirty days from delivery, no questions asked.",
            prompt_tokens=120,
            completion_tokens=14,
        )
    )
    question = await say(services, company_id, conversation_id, "What is your refund policy?")
    await services.jobs.join()
    await asyncio.sleep(0.05)  # let the bus deliver

    messages = await transcript(hub, account, conversation_id)
    assert [m["sender_type"] for m in messages] == ["user", "agent"]
    reply = messages[1]
    assert reply["content"].startswith("Hello! Our refund window")
    meta = reply["ai_metadata"]
    assert meta["model"] == "gpt-test-model"
    assert (meta["prompt_tokens"], meta["completion_tokens"], meta["tokens_used"]) == (120, 14, 134)
    assert meta["cost"] is None  # the fake model has no price: never priced as another
    assert meta["first_token_ms"] is not None and meta["total_ms"] >= meta["first_token_ms"]
    assert reply["sender_id"] == agent["id"]

    sent = fake.requests[-1]
    assert (sent["model"], sent["temperature"], sent["max_tokens"]) == ("gpt-test-model", 0, 321)
    assert sent["messages"][0]["role"] == "system"
    assert "You are Acme's assistant." in sent["messages"][0]["content"]
    assert sent["messages"][-1] == {"role": "user", "content": "What is your refund policy?"}

    deltas = recorder.of("message.delta", conversation_id)
    assert [d["index"] for d in deltas] == list(range(len(deltas)))
    assert "".join(d["delta"] for d in deltas) == reply["content"]
    assert all(d["message_id"] == reply["id"] for d in deltas)
    assert len(deltas) < len(reply["content"].split())  # coalesced, not one emit per token
    typing = [t["typing"] for t in recorder.of("agent.typing", conversation_id)]
    assert typing == [True, False]
    created = [m["id"] for m in recorder.of("message.created", conversation_id)]
    assert created == [str(question["id"]), reply["id"]]


async def test_a_redelivered_turn_gives_no_second_reply(hub, fake):
    account, _, services, company_id, conversation_id = await setup_conversation(hub)
    question = await say(services, company_id, conversation_id, "Hi")
    await services.jobs.join()
    for _ in range(2):
        await services.jobs.enqueue(turn_job(company_id, conversation_id, question))
    await services.jobs.join()
    messages = await transcript(hub, account, conversation_id)
    assert [m["sender_type"] for m in messages] == ["user", "agent"]
    assert len(fake.requests) == 1


async def test_order_is_kept_even_when_jobs_arrive_out_of_order(hub, fake):
    account, _, services, company_id, conversation_id = await setup_conversation(hub)
    fake.then(Reply(text="first answer"), Reply(text="second answer"))
    # Stored directly, so that no job runs yet.
    async with services.db.tenant(company_id) as conn:
        from hub.conversations import append_message

        one, _ = await append_message(
            services.db,
            conn,
            company_id=company_id,
            conversation_id=conversation_id,
            sender_type="user",
            content="one",
        )
        two, _ = await append_message(
            services.db,
            conn,
            company_id=company_id,
            conversation_id=conversation_id,
            sender_type="user",
            content="two",
        )
    await services.jobs.enqueue(turn_job(company_id, conversation_id, two))
    await services.jobs.enqueue(turn_job(company_id, conversation_id, one))
    await services.jobs.join()
    messages = await transcript(hub, account, conversation_id)
    assert [(m["sender_type"], m["content"]) for m in messages] == [
        ("user", "one"),
        ("user", "two"),
        ("agent", "first answer"),
        ("agent", "second answer"),
    ]
    assert [m["reply_to"] for m in messages[2:]] == [str(one["id"]), str(two["id"])]


async def test_handoff_tool_pauses_the_ai_and_notifies_staff(hub, fake):
    account, _, services, company_id, conversation_id = await setup_conversation(
        hub, tools=["handoff_to_human"]
    )
    fake.then(
        Reply(
            tool_calls=[{"name": "handoff_to_human", "arguments": {"reason": "Wants a manager"}}]
        ),
        Reply(text="I've asked a colleague to join."),
    )
    await say(services, company_id, conversation_id, "Get me a manager, now.")
    await services.jobs.join()
    assert fake.requests[0]["tools"][0]["function"]["name"] == "handoff_to_human"
    assert fake.requests[1]["messages"][-1]["role"] == "tool"
    messages = await transcript(hub, account, conversation_id)
    assert [m["sender_type"] for m in messages] == ["user", "system", "agent"]
    assert messages[1]["metadata"]["tool"] == "handoff_to_human"
    assert messages[2]["ai_metadata"]["tools"] == ["handoff_to_human"]

    async with services.db.tenant(company_id) as conn:
        state = await conversations.for_turn(conn, conversation_id)
    assert state["ai_paused"] is True
    assert await notification_types(services, company_id) == ["handoff_requested"]

    # The AI stays silent from now on.
    await say(services, company_id, conversation_id, "Hello?")
    await services.jobs.join()
    assert len(fake.requests) == 2
    assert [m["sender_type"] for m in await transcript(hub, account, conversation_id)][-1] == "user"


async def test_end_conversation_tool(hub, fake):
    account, _, services, company_id, conversation_id = await setup_conversation(
        hub, tools=["end_conversation"]
    )
    recorder = Recorder(services)
    fake.then(Reply(tool_calls=[{"name": "end_conversation", "arguments": {}}]), Reply(text="Bye!"))
    await say(services, company_id, conversation_id, "Thanks, that's all.")
    await services.jobs.join()
    await asyncio.sleep(0.05)
    got = await (
        await hub.get(f"/api/conversations/{conversation_id}", headers=account.headers)
    ).json()
    assert got["status"] == "ended" and got["ended_at"]
    assert [e["by"] for e in recorder.of("conversation.ended", conversation_id)] == ["agent"]


async def test_a_tool_the_agent_was_not_given_is_refused(hub, fake):
    account, _, services, company_id, conversation_id = await setup_conversation(hub)
    fake.then(
        Reply(tool_calls=[{"name": "end_conversation", "arguments": {}}]), Reply(text="Sorry.")
    )
    await say(services, company_id, conversation_id, "bye")
    await services.jobs.join()
    messages = await transcript(hub, account, conversation_id)
    assert messages[1]["metadata"]["result"] == {
        "error": "no tool named 'end_conversation' is available"
    }
    got = await (
        await hub.get(f"/api/conversations/{conversation_id}", headers=account.headers)
    ).json()
    assert got["status"] == "active"


async def test_model_down_gives_a_clear_notice_and_no_stuck_typing(hub, fake):
    account, _, services, company_id, conversation_id = await setup_conversation(hub)
    fast_retries(services, fake)
    recorder = Recorder(services)
    fake.default = Reply(status=500)
    question = await say(services, company_id, conversation_id, "Anyone there?")
    await services.jobs.join()
    await asyncio.sleep(0.05)
    messages = await transcript(hub, account, conversation_id)
    assert [(m["sender_type"], m["content"]) for m in messages] == [
        ("user", "Anyone there?"),
        ("system", FAILURE_NOTICE),
    ]
    assert "unavailable" in messages[1]["metadata"]["error"]
    assert messages[1]["reply_to"] == str(question["id"])
    typing = [t["typing"] for t in recorder.of("agent.typing", conversation_id)]
    # Every attempt switched typing on and off again; the last word is "off".
    assert typing[-1] is False and "True, True" not in str(typing)
    assert await notification_types(services, company_id) == ["turn_failed"]


async def test_malformed_model_output_is_a_failure_not_a_garbage_reply(hub, fake):
    account, _, services, company_id, conversation_id = await setup_conversation(hub)
    fast_retries(services, fake)
    fake.default = Reply(text="x", malformed=True)
    await say(services, company_id, conversation_id, "Hello")
    await services.jobs.join()
    messages = await transcript(hub, account, conversation_id)
    assert [m["sender_type"] for m in messages] == ["user", "system"]


async def test_the_first_token_goes_out_at_once_and_the_rest_in_batches(hub, fake):
    _, _, services, company_id, conversation_id = await setup_conversation(hub)
    runner = runtime.install(services)
    runner.settings = TurnSettings(flush_chars=20, flush_seconds=60)  # batches by size only
    recorder = Recorder(services)
    fake.then(Reply(text="Hello! Our refund window is thirty days from delivery, no questions."))
    await say(services, company_id, conversation_id, "Refunds?")
    await services.jobs.join()
    await asyncio.sleep(0.05)  # let the bus deliver
    deltas = [d["delta"] for d in recorder.of("message.delta", conversation_id)]
    assert deltas[0] == "Hello!"  # not held back for a batch
    assert all(len(d) >= 20 for d in deltas[1:-1]) and len(deltas) < 8
    assert "".join(deltas).startswith("Hello! Our refund window")


async def test_the_rolling_summary_reaches_the_model(hub, fake):
    account, _, services, company_id, conversation_id = await setup_conversation(hub)
    runner = runtime.install(services)  # a runner with a small window, replacing the default
    runner.settings = TurnSettings(window=4, summary_every=2)
    fake.default = Reply(text="Noted.")
    summary_text = "Customer Jane (order A-1234) wants a refund."
    for i in range(4):
        await say(services, company_id, conversation_id, f"message {i}")
        await services.jobs.join()
        await runner.summarizer.drain()
    summary_requests = [r for r in fake.requests if "Summarise" in r["messages"][0]["content"]]
    assert summary_requests, "no summary was requested"
    assert "message 0" in summary_requests[0]["messages"][1]["content"]

    fake.then(Reply(text=summary_text))  # the next refresh writes this summary
    fake.default = Reply(text="Noted.")
    for i in range(4, 8):
        await say(services, company_id, conversation_id, f"message {i}")
        await services.jobs.join()
        await runner.summarizer.drain()
    async with services.db.tenant(company_id) as conn:
        state = await conversations.for_turn(conn, conversation_id)
    assert state["summary"] and state["summary_seq"] > 0
    last = (
        fake.requests[-1]
        if "Summarise" not in fake.requests[-1]["messages"][0]["content"]
        else fake.requests[-2]
    )
    assert "Summary of the earlier conversation" in last["messages"][0]["content"]
    assert state["summary"] in last["messages"][0]["content"]
    # The window itself stays short: the old messages are not sent verbatim.
    assert all(m.get("content") != "message 0" for m in last["messages"])


async def test_two_redis_workers_one_killed_mid_turn_gives_exactly_one_reply(
    base_settings, redis_url, fake
):
    settings = redis_settings(base_settings, redis_url, fake, "turns")
    web = await open_services(settings, runtime.parts)
    workers = [await open_services(settings, runtime.parts) for _ in range(2)]
    for worker in workers:
        worker.jobs = RedisStreamQueue(
            worker.redis,
            settings.redis_prefix,
            QueuePolicy(backoff=0.01),
            lease_ms=400,
            reclaim_every=0.1,
        )
    try:
        company_id, conversation_id = await company_with_conversation(web, "Redis Co")
        # The first worker's model hangs mid-stream; the second's answers.
        fake.then(Reply(text="never finished " * 10, chunk_delay=5))
        fake.default = Reply(text="The one reply.")
        runtime.install(workers[0])
        await workers[0].jobs.start()
        await say(web, company_id, conversation_id, "Hello from Redis")
        for _ in range(100):
            if fake.requests:
                break
            await asyncio.sleep(0.05)
        assert fake.requests, "the first worker never called the model"
        # Kill the first worker mid-turn: its tasks vanish without acknowledging.
        for task in [*workers[0].jobs._loops, *workers[0].jobs._running]:
            task.cancel()
        runtime.install(workers[1])
        await workers[1].jobs.start()
        assert await agent_replies(web, company_id, conversation_id) == ["The one reply."]
        await asyncio.sleep(0.5)  # time for a duplicate to appear, if one could
        assert await agent_replies(web, company_id, conversation_id) == ["The one reply."]
    finally:
        await workers[1].jobs.stop()
        for services in (*workers, web):
            services.jobs._running.clear()
            await close_services(services)
        client = aioredis.from_url(redis_url)
        await client.delete(
            *[key async for key in client.scan_iter(f"*{settings.redis_prefix}*")] or ["-"]
        )
        await client.aclose()


async def test_contact_and_deal_tools_change_the_crm(hub, fake):
    account, _, services, company_id, conversation_id = await setup_conversation(
        hub, tools=["capture_contact", "create_deal"]
    )
    fake.then(
        Reply(
            tool_calls=[
                {
                    "name": "capture_contact",
                    "arguments": {"email": "Dana@Example.com", "first_name": "Dana"},
                },
                {"name": "create_deal", "arguments": {"title": "Team plan", "value": 1200}},
            ]
        ),
        Reply(text="Thanks Dana, I've noted your interest in the team plan."),
        Reply(
            tool_calls=[
                {
                    "name": "capture_contact",
                    "arguments": {
                        "email": "dana@example.com",
                        "phone": "+44 20 7946 0000",
                        "first_name": "Someone else",
                    },
                }
            ]
        ),
        Reply(text="Got your phone number too."),
        Reply(tool_calls=[{"name": "capture_contact", "arguments": {"email": "not an email"}}]),
        Reply(text="Could you check that address?"),
    )
    for text in (
        "I'm Dana, dana@example.com, we want the team plan",
        "My phone is +44 20 7946 0000",
        "x",
    ):
        await say(services, company_id, conversation_id, text)
        await services.jobs.join()

    contacts = await (await hub.get("/api/crm/contacts", headers=account.headers)).json()
    [dana] = contacts["contacts"]
    assert (dana["email"], dana["first_name"], dana["phone"]) == (
        "Dana@Example.com",
        "Dana",
        "+44 20 7946 0000",
    )
    conversation = await (
        await hub.get(f"/api/conversations/{conversation_id}", headers=account.headers)
    ).json()
    assert conversation["contact_id"] == dana["id"]
    deals = await (await hub.get("/api/crm/deals", headers=account.headers)).json()
    [deal] = deals["deals"]
    assert (deal["title"], deal["value"], deal["contact_id"], deal["stage"]) == (
        "Team plan",
        1200,
        dana["id"],
        "lead",
    )
    tool_messages = [
        m for m in await transcript(hub, account, conversation_id) if m["sender_type"] == "system"
    ]
    assert [m["metadata"]["tool"] for m in tool_messages] == [
        "capture_contact",
        "create_deal",
        "capture_contact",
        "capture_contact",
    ]
    assert tool_messages[-1]["metadata"]["result"] == {
        "error": "'not an email' is not an email address"
    }
    assert fake.requests[-1]["messages"][-1]["role"] == "tool"


async def test_a_reply_served_by_a_dated_snapshot_is_priced_as_the_configured_model(hub, fake):
    account, _, services, company_id, conversation_id = await setup_conversation(
        hub, model="gpt-4o-mini"
    )
    fake.then(
        Reply(
            text="Priced.",
            served_model="gpt-4o-mini-2024-07-18",
            prompt_tokens=1_000_000,
            completion_tokens=1_000_000,
        )
    )
    await say(services, company_id, conversation_id, "How much?")
    await services.jobs.join()
    reply = (await transcript(hub, account, conversation_id))[-1]
    meta = reply["ai_metadata"]
    assert (meta["model"], meta["served_model"]) == ("gpt-4o-mini", "gpt-4o-mini-2024-07-18")
    assert meta["cost"] == 0.75  # 0.15 + 0.60 per million: gpt-4o-mini's prices
    costs = await (await hub.get("/api/analytics/costs", headers=account.headers)).json()
    assert costs["estimatedCost"] == 0.75 and costs["byModel"][0]["model"] == "gpt-4o-mini"


async def test_a_retried_turn_does_not_run_its_tools_again(hub, fake):
    account, _, services, company_id, conversation_id = await setup_conversation(
        hub, tools=["create_deal"]
    )
    fast_retries(services, fake)
    deal_call = {"name": "create_deal", "arguments": {"title": "Team plan", "value": 100}}
    fake.then(
        Reply(tool_calls=[deal_call]),
        Reply(text="x", malformed=True),  # the turn fails after its tool ran...
        Reply(tool_calls=[deal_call]),  # ...and its retry asks for the same tool again
        Reply(text="Noted your interest."),
    )
    await say(services, company_id, conversation_id, "We want the team plan")
    await services.jobs.join()
    deals = await (await hub.get("/api/crm/deals", headers=account.headers)).json()
    assert len(deals["deals"]) == 1
    messages = await transcript(hub, account, conversation_id)
    assert [m["sender_type"] for m in messages] == ["user", "system", "agent"]
    # The retry fed the model the stored result of the first run.
    assert (
        fake.requests[3]["messages"][-1]["content"] == fake.requests[1]["messages"][-1]["content"]
    )
    assert deals["deals"][0]["id"] in fake.requests[3]["messages"][-1]["content"]


async def test_a_failed_enqueue_keeps_the_message_and_the_turn_is_recovered(
    base_settings, redis_url, fake
):
    from hub import lifecycle

    settings = redis_settings(base_settings, redis_url, fake, "enqueue")
    web = await open_services(settings, runtime.parts)
    worker = await open_services(settings, runtime.parts)
    reachable = web.jobs.client
    try:
        company_id, conversation_id = await company_with_conversation(web, "Enqueue Co")
        # Redis is unreachable for the queue at the moment the turn is queued.
        web.jobs.client = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
        message = await say(web, company_id, conversation_id, "Still stored?", client_id="c1")
        assert message["content"] == "Still stored?"
        assert b'job_enqueue_failures_total{kind="turn"} 1.0' in web.metrics.render()
        await web.jobs.client.aclose()
        web.jobs.client = reachable

        # A worker's periodic recovery queues it again; the worker answers.
        fake.default = Reply(text="Recovered.")
        runtime.install(worker)
        await worker.jobs.start()
        assert await lifecycle.recover_turns(web) >= 1
        assert await agent_replies(web, company_id, conversation_id) == ["Recovered."]
    finally:
        web.jobs.client = reachable
        for services in (worker, web):
            await close_services(services)
        client = aioredis.from_url(redis_url)
        await client.delete(
            *[key async for key in client.scan_iter(f"*{settings.redis_prefix}*")] or ["-"]
        )
        await client.aclose()


async def test_a_turn_recovered_twice_and_still_unanswered_is_recorded_as_failed(
    base_settings, redis_url, fake
):
    """Its job is queued (Redis) but whatever takes it dies before answering,
    each time: recovery stops queueing it and records why, where staff see it."""
    from hub import lifecycle

    settings = redis_settings(base_settings, redis_url, fake, "poison")
    web = await open_services(settings, runtime.parts)  # no worker consumes this queue
    try:
        company_id, conversation_id = await company_with_conversation(web, "Poison Co")
        question = await say(web, company_id, conversation_id, "Anyone?")
        found = [await lifecycle.recover_turns(web) for _ in range(4)]
        async with web.db.tenant(company_id) as conn:
            rows = await conn.fetch(
                "SELECT sender_type, content, metadata, reply_to FROM messages"
                " WHERE conversation_id = $1 ORDER BY seq",
                conversation_id,
            )
        stream = web.jobs.company_stream(str(company_id))
        queued = await web.jobs.client.xlen(stream)
    finally:
        await close_services(web)
        client = aioredis.from_url(redis_url)
        await client.delete(
            *[key async for key in client.scan_iter(f"*{settings.redis_prefix}*")] or ["-"]
        )
        await client.aclose()
    assert found[:3] == [1, 1, 1] and found[3] == 0  # answered by the notice: nothing left
    assert queued == 3  # sent once, then queued again twice: never a fourth time
    user, notice = rows
    assert (notice["sender_type"], notice["content"]) == ("system", FAILURE_NOTICE)
    assert notice["reply_to"] == question["id"]
    assert notice["metadata"]["failed_turn"] is True
    assert notice["metadata"]["error"].startswith("the turn was queued 3 times and never answered")


async def test_turn_recovery_runs_once_per_period_across_workers(base_settings, redis_url):
    from hub import lifecycle

    settings = base_settings.with_overrides(
        redis_url=redis_url, redis_prefix=f"recovery-{uuid.uuid4().hex[:8]}"
    )
    workers = [await open_services(settings, runtime.parts) for _ in range(2)]
    calls = []
    original = lifecycle.recover_turns

    async def counted(services, **kw):
        calls.append(kw["min_age"])
        return 0

    lifecycle.recover_turns = counted
    try:
        tasks = [
            asyncio.create_task(lifecycle.recover_turns_periodically(w, every=0.3)) for w in workers
        ]
        await asyncio.sleep(0.75)  # two periods
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        lifecycle.recover_turns = original
        for services in workers:
            await close_services(services)
    assert 1 <= len(calls) <= 2  # one worker per period, not both
    assert all(age.total_seconds() == 0.6 for age in calls)


async def test_a_turn_given_up_on_while_still_running_keeps_its_reply(hub, fake):
    account, _, services, company_id, conversation_id = await setup_conversation(hub)
    runner = runtime.install(services)
    fake.then(Reply(text="The real answer.", delay=0.5))
    question = await say(services, company_id, conversation_id, "Slow one?")
    for _ in range(100):
        if fake.requests:
            break
        await asyncio.sleep(0.02)
    # The queue gives up on the turn (as Redis does after too many deliveries)
    # while it is in fact still running.
    job = turn_job(company_id, conversation_id, question)
    await runner.dead_letter(job, RuntimeError("delivered too many times"))
    await services.jobs.join()
    messages = await transcript(hub, account, conversation_id)
    assert [(m["sender_type"], m["content"]) for m in messages] == [
        ("user", "Slow one?"),
        ("system", FAILURE_NOTICE),
        ("agent", "The real answer."),
    ]
    assert messages[2]["reply_to"] == str(question["id"])


async def test_tokens_spent_on_summaries_count_in_cost_analytics(hub, fake):
    account, agent, services, company_id, conversation_id = await setup_conversation(
        hub, model="gpt-4o-mini"
    )
    runner = runtime.install(services)
    runner.settings = TurnSettings(window=2, summary_every=2)
    fake.default = Reply(text="Noted.", prompt_tokens=100, completion_tokens=10)
    for i in range(3):
        await say(services, company_id, conversation_id, f"message {i}")
        await services.jobs.join()
        await runner.summarizer.drain()
    summaries = len([r for r in fake.requests if "Summarise" in r["messages"][0]["content"]])
    assert summaries >= 1
    async with services.db.tenant(company_id) as conn:
        usage = await conn.fetch("SELECT purpose, model, agent_id FROM model_usage")
    assert [(u["purpose"], u["model"], str(u["agent_id"])) for u in usage] == [
        ("summary", "gpt-4o-mini", agent["id"])
    ] * summaries
    costs = await (await hub.get("/api/analytics/costs", headers=account.headers)).json()
    # Three replies and the summaries, each 100 + 10 tokens.
    calls = 3 + summaries
    assert costs["totalTokens"] == calls * 110
    assert costs["byAgent"][0]["totalTokens"] == calls * 110
    assert costs["estimatedCost"] == round(calls * (100 * 0.15 + 10 * 0.60) / 1_000_000, 6)


# -- with no model key: the offline responder -----------------------------------------

OFFLINE_ORIGIN = "https://shop.example.com"


async def offline_visitor(make_client, tools: list[str]):
    """A hub with no model key (the offline responder answers), a gpt-4o-mini
    agent, and a visitor's conversation started through the public API."""
    hub = await make_client()
    account = await signup(hub)
    agent = await (
        await hub.post(
            "/api/agents",
            json={"name": "Support", "model": "gpt-4o-mini", "tools": tools},
            headers=account.headers,
        )
    ).json()
    key = await (
        await hub.post(
            f"/api/agents/{agent['id']}/keys",
            json={"allowed_origins": [OFFLINE_ORIGIN]},
            headers=account.headers,
        )
    ).json()
    public = {"Authorization": f"Bearer {key['key']}", "Origin": OFFLINE_ORIGIN}
    started = await (
        await hub.post("/public/conversations", json={"agent_id": agent["id"]}, headers=public)
    ).json()
    visitor = {**public, "X-Conversation-Token": started["token"]}
    return hub, account, started, visitor


async def visitor_says(hub, started, visitor, text: str) -> None:
    sent = await hub.post(
        f"/public/conversations/{started['id']}/messages", json={"content": text}, headers=visitor
    )
    assert sent.status == 201, await sent.text()
    await hub.app[SERVICES].jobs.join()


async def test_offline_replies_are_recorded_as_the_offline_responder_at_no_cost(make_client):
    hub, account, started, visitor = await offline_visitor(make_client, tools=[])
    await visitor_says(hub, started, visitor, "What is your refund policy?")
    messages = await transcript(hub, account, started["id"])
    assert [m["sender_type"] for m in messages] == ["user", "agent"]
    meta = messages[1]["ai_metadata"]
    # Not the agent's configured gpt-4o-mini: no provider was called.
    assert (meta["model"], meta["served_model"]) == ("offline-responder", "offline-responder")
    assert (meta["prompt_tokens"], meta["completion_tokens"], meta["tokens_used"]) == (0, 0, 0)
    assert meta["cost"] == 0

    costs = await (await hub.get("/api/analytics/costs", headers=account.headers)).json()
    assert costs["estimatedCost"] == 0 and costs["totalTokens"] == 0
    assert [(m["model"], m["cost"], m["priced"]) for m in costs["byModel"]] == [
        ("offline-responder", 0, True)
    ]
    assert costs["unpriced"] == []


async def test_offline_responder_hands_over_a_visitor_who_asks_for_a_person(make_client):
    hub, account, started, visitor = await offline_visitor(make_client, tools=["handoff_to_human"])
    recorder = Recorder(hub.app[SERVICES])
    staff = SocketClient("/dashboard")
    try:
        await staff.connect(hub, account.token)
        await visitor_says(hub, started, visitor, "I want to talk to a human please")
        handoff = await staff.wait_for("handoff:requested")
        assert handoff == {
            "conversation_id": started["id"],
            "reason": "The visitor asked for a person.",
        }
    finally:
        await staff.close()
    assert len(recorder.of("conversation.handoff", started["id"])) == 1

    messages = await transcript(hub, account, started["id"])
    assert [m["sender_type"] for m in messages] == ["user", "system", "agent"]
    assert messages[1]["metadata"]["tool"] == "handoff_to_human"
    reply = messages[2]
    assert reply["content"] == HANDED_OFF
    assert reply["ai_metadata"]["tools"] == ["handoff_to_human"]
    assert reply["ai_metadata"]["model"] == "offline-responder"
    conversation = await (
        await hub.get(f"/api/conversations/{started['id']}", headers=account.headers)
    ).json()
    assert conversation["ai_paused"] is True
    async with hub.app[SERVICES].db.tenant(uuid.UUID(account.company_id)) as conn:
        notified = await conn.fetchval(
            "SELECT count(*) FROM notifications WHERE type = 'handoff_requested'"
        )
    assert notified == 1

    # Handed over: the AI stays silent, and nothing is handed over twice.
    await visitor_says(hub, started, visitor, "Hello? Can I speak to a person?")
    messages = await transcript(hub, account, started["id"])
    assert [m["sender_type"] for m in messages] == ["user", "system", "agent", "user"]
    assert len(recorder.of("conversation.handoff", started["id"])) == 1


async def test_offline_responder_does_not_hand_over_on_a_question_about_people(make_client):
    hub, account, started, visitor = await offline_visitor(make_client, tools=["handoff_to_human"])
    await visitor_says(hub, started, visitor, "Are you human?")
    await visitor_says(hub, started, visitor, "What does a human agent cost?")
    messages = await transcript(hub, account, started["id"])
    assert [m["sender_type"] for m in messages] == ["user", "agent", "user", "agent"]
    conversation = await (
        await hub.get(f"/api/conversations/{started['id']}", headers=account.headers)
    ).json()
    assert conversation["ai_paused"] is False


async def test_offline_responder_without_the_handoff_tool_says_it_cannot(make_client):
    hub, account, started, visitor = await offline_visitor(make_client, tools=[])
    await visitor_says(hub, started, visitor, "Agent please")
    messages = await transcript(hub, account, started["id"])
    assert [(m["sender_type"], m["content"]) for m in messages][1:] == [("agent", NO_HANDOFF)]
    conversation = await (
        await hub.get(f"/api/conversations/{started['id']}", headers=account.headers)
    ).json()
    assert conversation["ai_paused"] is False
