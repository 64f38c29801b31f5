"""Workflows at work: every trigger and node type through the real event,
queue and turn paths; the seed's two examples through real chat turns;
outbound webhooks against a local server; durability, redelivery and the
depth limit."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis
from aiohttp import web

from agents_runtime import runtime
from fakes.openai import Reply
from hub import jsoncodec
from hub.conversations import start_conversation
from hub.services import SERVICES, close_services, open_services
from hub.store import conversations
from hub.store import workflows as workflow_store
from hub.workflows import event_job, run_job, signature
from tests.helpers import signup
from tests.test_public import ORIGIN, make_agent, make_key, start
from tests.workflow_helpers import (
    TRIGGER,
    eventually,
    executions,
    finished,
    node,
    save,
    settle,
    steps,
)


@pytest.fixture
async def hub(fake, make_client):  # fake first: it must outlive the hub
    client = await make_client(
        openai_api_key="sk-test",
        openai_base_url=fake.base_url,
        workflow_webhooks_allow_private=True,
    )
    fast(client)
    fake.default = Reply(text="Happy to help.")
    return client


def fast(client) -> None:
    engine = client.app[SERVICES].workflows
    engine.settings.poll_seconds = 0.05
    engine.webhooks.backoff = 0.01


class Receiver:
    """A local HTTP server for outbound webhooks: answers from a script, records requests."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict, bytes]] = []
        self.statuses: list[int] = []
        self.delay = 0.0
        self.url: str | None = None  # its /hook, once served

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/hook", self._hook)
        return app

    async def _hook(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        if self.delay:
            await asyncio.sleep(self.delay)
        status = self.statuses.pop(0) if self.statuses else 200
        return web.json_response({"id": "remote-7", "ok": status == 200}, status=status)


@pytest.fixture
async def receiver(aiohttp_server):
    receiver = Receiver()
    server = await aiohttp_server(receiver.app())
    receiver.url = str(server.make_url("/hook"))
    return receiver


async def site(client, account):
    agent = await make_agent(client, account, model="gpt-test")
    key = await make_key(client, account, agent["id"])
    return agent, {"Authorization": f"Bearer {key['key']}", "Origin": ORIGIN}


async def say(client, headers, started, text: str) -> dict:
    response = await client.post(
        f"/public/conversations/{started['id']}/messages",
        json={"content": text},
        headers={**headers, "X-Conversation-Token": started["token"]},
    )
    assert response.status == 201, await response.text()
    return await response.json()


async def transcript(client, account, conversation_id) -> list[dict]:
    response = await client.get(
        f"/api/conversations/{conversation_id}/messages?limit=100", headers=account.headers
    )
    return (await response.json())["messages"]


async def conversation(client, account, conversation_id) -> dict:
    return await (
        await client.get(f"/api/conversations/{conversation_id}", headers=account.headers)
    ).json()


async def notifications(client, account) -> list[dict]:
    response = await client.get("/api/notifications?limit=100", headers=account.headers)
    return (await response.json())["notifications"]


# --- the seed's examples, through real chat turns ----------------------------


async def test_support_escalation_hands_off_before_the_ai_answers(hub, fake):
    account = await signup(hub)
    agent, headers = await site(hub, account)
    workflow = await save(
        hub,
        account,
        "message_received",
        node("notify", "notify", title="Urgent: {{message.content}}"),
        node("handoff", "handoff", reason="Urgent request"),
        config={"keywords": ["urgent", "emergency"]},
        name="Support Escalation",
    )

    calm = await start(hub, agent["id"], headers)
    await say(hub, headers, calm, "Hello, what do you sell?")
    await settle(hub)
    assert [m["sender_type"] for m in await transcript(hub, account, calm["id"])] == [
        "user",
        "agent",
    ]
    assert await executions(hub, account, workflow["id"]) == []

    urgent = await start(hub, agent["id"], headers)
    requests_before = len(fake.requests)
    await say(hub, headers, urgent, "This is an EMERGENCY, my shop is down")
    await settle(hub)
    [run] = await executions(hub, account, workflow["id"])
    assert run["status"] == "success" and run["triggered_by"] == "message_received"
    assert list(steps(run)) == ["trigger", "notify", "handoff"]
    # The AI stayed silent: a person was asked for before it could answer.
    assert len(fake.requests) == requests_before
    assert [m["sender_type"] for m in await transcript(hub, account, urgent["id"])] == ["user"]
    services = hub.app[SERVICES]
    async with services.db.tenant(uuid.UUID(account.company_id)) as conn:
        paused = await conversations.for_turn(conn, uuid.UUID(urgent["id"]))
    assert paused["ai_paused"] is True
    kinds = [n["type"] for n in await notifications(hub, account)]
    assert "workflow" in kinds and "handoff_requested" in kinds
    title = next(n["title"] for n in await notifications(hub, account) if n["type"] == "workflow")
    assert title == "Urgent: This is an EMERGENCY, my shop is down"


async def test_lead_qualification(hub, fake):
    account = await signup(hub)
    agent, headers = await site(hub, account)
    greeting = await save(
        hub,
        account,
        "conversation_started",
        node(
            "hello", "send_message", content="Hi! I'm {{conversation.channel}} support. Your email?"
        ),
        node("tag", "add_tag", tag="lead"),
        name="Lead Qualification",
    )
    email = r"[\w.+-]+@[\w-]+\.[\w.]+"
    qualify = await save(
        hub,
        account,
        "message_received",
        nodes=[
            TRIGGER,
            node(
                "has_email", "condition", field="message.content", operator="matches", value=email
            ),
            node(
                "extract",
                "llm",
                mode="extract",
                fields={"email": "their email", "name": "first name"},
            ),
            node(
                "contact",
                "create_contact",
                email="{{vars.email}}",
                first_name="{{vars.name}}",
                tags=["lead"],
            ),
            node("deal", "create_deal", title="Lead: {{contact.first_name}}", value="1500"),
            node("qualified", "update_deal", stage="qualified", probability=40),
            node("untag", "remove_tag", tag="lead"),
        ],
        edges=[
            {"id": "a", "source": "trigger", "target": "has_email"},
            {"id": "b", "source": "has_email", "target": "extract", "sourceHandle": "yes"},
            {"id": "c", "source": "extract", "target": "contact"},
            {"id": "d", "source": "contact", "target": "deal"},
            {"id": "e", "source": "deal", "target": "qualified"},
            {"id": "f", "source": "qualified", "target": "untag"},
        ],
    )

    started = await start(hub, agent["id"], headers)
    await settle(hub)
    [hello] = await transcript(hub, account, started["id"])
    assert hello["sender_type"] == "agent"
    assert hello["content"] == "Hi! I'm chat support. Your email?"
    assert (await conversation(hub, account, started["id"]))["tags"] == ["lead"]

    await say(hub, headers, started, "Sure, I'm not sharing that yet")
    await settle(hub)
    no_email = (await executions(hub, account, qualify["id"]))[0]
    assert no_email["status"] == "success" and list(steps(no_email)) == ["trigger", "has_email"]

    fake.then(Reply(text='```json\n{"email": "ada@example.com", "name": "Ada"}\n```'))
    await say(hub, headers, started, "ok: ada@example.com, I'm Ada")
    await settle(hub)
    run = (await executions(hub, account, qualify["id"]))[0]
    assert run["status"] == "success", run
    trace = steps(run)
    assert trace["extract"]["output"]["values"] == {"email": "ada@example.com", "name": "Ada"}
    extract_request = next(r for r in fake.requests if "Extract these fields" in str(r["messages"]))
    assert extract_request["model"] == "gpt-test" and extract_request["temperature"] == 0

    view = await conversation(hub, account, started["id"])
    assert view["tags"] == [] and view["contact_id"] == trace["contact"]["output"]["contact_id"]
    contact = await (
        await hub.get(f"/api/crm/contacts/{view['contact_id']}", headers=account.headers)
    ).json()
    assert contact["email"] == "ada@example.com" and contact["tags"] == ["lead"]
    [deal] = contact["deals"]
    assert deal["title"] == "Lead: Ada" and deal["value"] == 1500
    assert deal["stage"] == "qualified" and deal["probability"] == 40
    # The AI still answered each message after its workflows ran.
    assert [m["sender_type"] for m in await transcript(hub, account, started["id"])] == [
        "agent",
        "user",
        "agent",
        "user",
        "agent",
    ]
    assert len(await executions(hub, account, greeting["id"])) == 1


# --- the other triggers --------------------------------------------------------


async def test_crm_triggers(hub):
    account = await signup(hub)
    owner = account.user_id
    on_created = await save(
        hub, account, "contact_created", node("t", "add_tag", tag="new", target="contact")
    )
    on_phone = await save(
        hub,
        account,
        "contact_updated",
        node("n", "notify", title="{{contact.email}} has a phone", user_id=owner),
        config={"fields": ["phone"]},
    )
    on_deal = await save(hub, account, "deal_created", node("p", "update_deal", probability=55))
    on_won = await save(
        hub,
        account,
        "deal_stage_changed",
        node("v", "set_variable", name="won", value="{{deal.title}}"),
        config={"from": "negotiation", "to": "closed_won"},
    )
    disabled = await save(hub, account, "contact_created", node("x", "end"), enabled=False)

    contact = await (
        await hub.post(
            "/api/crm/contacts", json={"email": "bo@example.com"}, headers=account.headers
        )
    ).json()
    [created_run] = await finished(hub, account, on_created["id"])
    assert created_run["status"] == "success"
    assert (await executions(hub, account, disabled["id"])) == []

    path = f"/api/crm/contacts/{contact['id']}"
    await hub.patch(path, json={"first_name": "Bo"}, headers=account.headers)
    await settle(hub)
    assert await executions(hub, account, on_phone["id"]) == []  # not a field it watches
    await hub.patch(path, json={"phone": "+44 20 7946 0000"}, headers=account.headers)
    [phone_run] = await finished(hub, account, on_phone["id"])
    assert steps(phone_run)["n"]["output"]["notified"] == 1
    assert any(
        n["title"] == "bo@example.com has a phone" for n in await notifications(hub, account)
    )
    tagged = await (await hub.get(path, headers=account.headers)).json()
    assert tagged["tags"] == ["new"]

    deal = await (
        await hub.post(
            "/api/crm/deals",
            json={"title": "Big one", "contact_id": contact["id"], "stage": "negotiation"},
            headers=account.headers,
        )
    ).json()
    await finished(hub, account, on_deal["id"])
    deal_path = f"/api/crm/deals/{deal['id']}"
    assert (await (await hub.get(deal_path, headers=account.headers)).json())["probability"] == 55
    await hub.patch(deal_path, json={"stage": "closed_lost"}, headers=account.headers)
    await hub.patch(deal_path, json={"stage": "negotiation"}, headers=account.headers)
    await hub.patch(deal_path, json={"stage": "closed_won"}, headers=account.headers)
    await settle(hub)
    [won] = await finished(hub, account, on_won["id"])
    assert steps(won)["v"]["output"]["value"] == "Big one"


async def test_conversation_ended_trigger(hub):
    account = await signup(hub)
    agent, headers = await site(hub, account)
    workflow = await save(
        hub,
        account,
        "conversation_ended",
        node("bye", "set_variable", name="channel", value="{{conversation.channel}}"),
        config={"agent_id": agent["id"]},
    )
    started = await start(hub, agent["id"], headers)
    ended = await hub.patch(
        f"/api/conversations/{started['id']}", json={"status": "ended"}, headers=account.headers
    )
    assert ended.status == 200
    [run] = await finished(hub, account, workflow["id"])
    assert run["status"] == "success" and steps(run)["bye"]["output"]["value"] == "chat"


async def test_schedule_trigger_fires_once_per_due_time(hub):
    account = await signup(hub)
    workflow = await save(
        hub,
        account,
        "schedule",
        node("v", "set_variable", name="at", value="{{trigger.scheduled_for}}"),
        config={"cron": "*/5 * * * *"},
    )
    services = hub.app[SERVICES]
    engine = services.workflows
    # Tick by hand, as two processes polling at once; stopped before the run is
    # due, so that the hub's own timer cannot take it first.
    await engine.stop_timers()
    due = datetime.now(UTC) - timedelta(minutes=1)
    async with services.db.system() as conn:
        await workflow_store.set_next_run(conn, uuid.UUID(workflow["id"]), due)
    queued = await asyncio.gather(engine.tick(), engine.tick())
    assert sum(queued) == 1
    [run] = await finished(hub, account, workflow["id"])
    assert run["triggered_by"] == "schedule" and run["status"] == "success"
    assert steps(run)["v"]["output"]["value"] == due.isoformat()
    current = await (
        await hub.get(f"/api/workflows/{workflow['id']}", headers=account.headers)
    ).json()
    assert datetime.fromisoformat(current["next_run_at"]) > datetime.now(UTC)


# --- nodes that reach outside ----------------------------------------------------


def webhook_trigger(client, workflow, payload: dict, key: str | None = None):
    body = jsoncodec.dumps(payload)
    headers = {"X-Syntera-Signature": signature(workflow["secret"], body)}
    if key:
        headers["Idempotency-Key"] = key
    return client.post(workflow["webhook_url"], data=body, headers=headers)


async def test_webhook_node_signs_retries_and_passes_the_response_on(hub, receiver):
    account = await signup(hub)
    workflow = await save(
        hub,
        account,
        "webhook",
        node(
            "hook",
            "webhook",
            url=receiver.url,
            body={"order": "{{trigger.order}}", "n": "{{trigger.n}}"},
            headers={"X-Shop": "{{trigger.shop}}"},
            retries=3,
        ),
        node("after", "set_variable", name="remote", value="{{nodes.hook.output.body.id}}"),
    )
    receiver.statuses = [500, 503]
    await webhook_trigger(hub, workflow, {"order": "A-1", "n": 3, "shop": "acme"})
    [run] = await finished(hub, account, workflow["id"])
    assert run["status"] == "success", run
    hook = steps(run)["hook"]
    assert [a.get("status") for a in hook["output"]["attempts"]] == [500, 503, 200]
    assert steps(run)["after"]["output"]["value"] == "remote-7"

    assert len(receiver.requests) == 3
    headers, body = receiver.requests[-1]
    assert jsoncodec.loads(body) == {"order": "A-1", "n": 3}  # a lone template keeps its type
    assert headers["X-Syntera-Signature"] == signature(workflow["secret"], body)
    assert headers["X-Shop"] == "acme"
    deliveries = {h["X-Syntera-Delivery"] for h, _ in receiver.requests}
    assert deliveries == {f"{run['id']}:hook"}  # the same on every retry


async def test_webhook_node_gives_up_and_a_node_may_continue_past_a_failure(hub, receiver):
    account = await signup(hub)
    stops = await save(
        hub,
        account,
        "webhook",
        node("hook", "webhook", url=receiver.url, retries=2),
        node("never", "end"),
    )
    receiver.statuses = [500] * 10
    await webhook_trigger(hub, stops, {})
    [run] = await finished(hub, account, stops["id"])
    assert run["status"] == "failed" and list(steps(run)) == ["trigger", "hook"]
    hook = steps(run)["hook"]
    assert hook["error"] == "the webhook failed after 3 attempts: HTTP 500"
    assert len(hook["output"]["attempts"]) == 3 and len(receiver.requests) == 3

    goes_on = await save(
        hub,
        account,
        "webhook",
        node(
            "hook", "webhook", url=receiver.url, retries=0, on_error="continue", timeout_seconds=0.2
        ),
        node("next", "set_variable", name="went_on", value=True),
    )
    receiver.delay = 1.0
    await webhook_trigger(hub, goes_on, {})
    [run] = await finished(hub, account, goes_on["id"])
    assert run["status"] == "success"
    assert steps(run)["hook"]["status"] == "failed" and steps(run)["next"]["status"] == "success"

    refused = await save(
        hub, account, "webhook", node("hook", "webhook", url=receiver.url + "?x=1")
    )
    receiver.delay, receiver.statuses = 0, [404]
    await webhook_trigger(hub, refused, {})
    [run] = await finished(hub, account, refused["id"])
    assert steps(run)["hook"]["error"] == "the webhook answered HTTP 404"  # not retried


async def test_webhooks_to_private_addresses_are_refused_by_default(client, account, receiver):
    workflow = await save(client, account, "webhook", node("hook", "webhook", url=receiver.url))
    await webhook_trigger(client, workflow, {})
    [run] = await finished(client, account, workflow["id"])
    assert run["status"] == "failed"
    assert "is not a public address" in steps(run)["hook"]["error"]
    local = await save(
        client, account, "webhook", node("hook", "webhook", url="http://localhost:9/x")
    )
    await webhook_trigger(client, local, {})
    [run] = await finished(client, account, local["id"])
    assert "no public address" in steps(run)["hook"]["error"]
    assert receiver.requests == []


async def test_llm_classify_routes_a_conversation(hub, fake):
    account = await signup(hub)
    agent, headers = await site(hub, account)
    workflow = await save(
        hub,
        account,
        "message_received",
        nodes=[
            TRIGGER,
            node("kind", "llm", mode="classify", categories=["billing", "technical", "other"]),
            node(
                "is_billing", "condition", field="vars.category", operator="equals", value="billing"
            ),
            node("tag", "add_tag", tag="billing"),
        ],
        edges=[
            {"id": "a", "source": "trigger", "target": "kind"},
            {"id": "b", "source": "kind", "target": "is_billing"},
            {"id": "c", "source": "is_billing", "target": "tag", "sourceHandle": "yes"},
        ],
    )
    started = await start(hub, agent["id"], headers)
    fake.then(Reply(text="Billing."))
    await say(hub, headers, started, "Why was I charged twice?")
    await settle(hub)
    [run] = await executions(hub, account, workflow["id"])
    assert run["status"] == "success"
    assert steps(run)["kind"]["output"]["category"] == "billing"
    assert (await conversation(hub, account, started["id"]))["tags"] == ["billing"]

    fake.then(Reply(text="I would say: weather"))
    await say(hub, headers, started, "Nice day?")
    await settle(hub)
    latest = (await executions(hub, account, workflow["id"]))[0]
    assert latest["status"] == "failed" and "no category" in steps(latest)["kind"]["error"]


async def test_the_llm_node_needs_a_model(client, account):
    workflow = await save(
        client,
        account,
        "webhook",
        node("kind", "llm", mode="classify", input="{{trigger.text}}", categories=["a", "b"]),
    )
    await webhook_trigger(client, workflow, {"text": "hello"})
    [run] = await finished(client, account, workflow["id"])
    assert steps(run)["kind"]["error"] == "the llm node needs a model endpoint (set OPENAI_API_KEY)"


async def test_end_stops_and_branches_skip(hub):
    account = await signup(hub)
    workflow = await save(
        hub,
        account,
        "webhook",
        nodes=[
            TRIGGER,
            node(
                "big",
                "condition",
                all=[{"field": "trigger.amount", "operator": "gte", "value": 100}],
            ),
            node("vip", "set_variable", name="tier", value="vip"),
            node("stop", "end"),
            node("small", "set_variable", name="tier", value="small"),
            node("after", "set_variable", name="seen", value=True),
        ],
        edges=[
            {"id": "a", "source": "trigger", "target": "big"},
            {"id": "b", "source": "big", "target": "vip", "sourceHandle": "yes"},
            {"id": "c", "source": "vip", "target": "stop"},
            {"id": "d", "source": "big", "target": "small", "sourceHandle": "no"},
            {"id": "e", "source": "small", "target": "after"},
        ],
    )
    await webhook_trigger(hub, workflow, {"amount": 250})
    await webhook_trigger(hub, workflow, {"amount": 5})
    runs = await finished(hub, account, workflow["id"], count=2)
    by_amount = {r["trigger_data"]["amount"]: list(steps(r)) for r in runs}
    assert by_amount == {
        250: ["trigger", "big", "vip", "stop"],
        5: ["trigger", "big", "small", "after"],
    }


# --- durability --------------------------------------------------------------------


async def test_a_delay_survives_a_restart_and_fires_once(fake, make_client):
    first = await make_client(openai_api_key="sk-test", openai_base_url=fake.base_url)
    fast(first)
    account = await signup(first)
    agent, headers = await site(first, account)
    workflow = await save(
        first,
        account,
        "conversation_started",
        node("wait", "delay", seconds=1),
        node("nudge", "send_message", content="Still there?", sender="system"),
    )
    started = await start(first, agent["id"], headers)
    [waiting] = await finished(first, account, workflow["id"])
    assert waiting["status"] == "running" and waiting["resume_at"]
    await first.close()  # stopped while the delay runs

    second = await make_client(openai_api_key="sk-test", openai_base_url=fake.base_url)
    fast(second)

    async def done():
        runs = await executions(second, account, workflow["id"])
        return runs if runs[0]["status"] == "success" else None

    [run] = await eventually(done)
    assert list(steps(run)) == ["trigger", "wait", "nudge"]
    await asyncio.sleep(0.3)  # a second firing would show by now
    messages = await transcript(second, account, started["id"])
    assert [m["content"] for m in messages] == ["Still there?"]


async def keep(services, company_id, conversation, event_id: str) -> int:
    """An outbox entry, as the hook writes it in a change's transaction."""
    async with services.db.tenant(company_id) as conn:
        return await workflow_store.keep_event(
            conn,
            company_id=company_id,
            trigger_type="conversation_started",
            event_id=event_id,
            subject=str(conversation["id"]),
            data=jsoncodec.loads(jsoncodec.dumps(conversation)),
            depth=0,
        )


async def test_a_redelivered_event_does_nothing_twice(hub, receiver):
    account = await signup(hub)
    agent, headers = await site(hub, account)
    workflow = await save(
        hub,
        account,
        "conversation_started",
        node("hi", "send_message", content="Welcome!"),
        node("hook", "webhook", url=receiver.url),
    )
    services = hub.app[SERVICES]
    company_id = uuid.UUID(account.company_id)
    async with services.db.tenant(company_id) as conn:
        conversation = await start_conversation(
            services.db, conn, company_id=company_id, agent_id=uuid.UUID(agent["id"])
        )
    await finished(hub, account, workflow["id"])
    engine = services.workflows

    outbox_id = await keep(services, company_id, conversation, "evt-1")
    job = event_job(company_id, str(conversation["id"]), outbox_id)
    await asyncio.gather(engine.on_event(job), engine.on_event(job))  # delivered twice at once
    await engine.on_event(job)  # and again later
    # The same event kept again (a replay): its execution exists, nothing runs.
    await engine.on_event(
        event_job(
            company_id,
            str(conversation["id"]),
            await keep(services, company_id, conversation, "evt-1"),
        )
    )
    runs = await executions(hub, account, workflow["id"])
    assert len(runs) == 2  # the original event's and evt-1's, once each
    assert len(receiver.requests) == 2
    contents = [m["content"] for m in await transcript(hub, account, conversation["id"])]
    assert contents == ["Welcome!", "Welcome!"]


async def test_an_event_whose_job_was_lost_is_queued_again(hub):
    account = await signup(hub)
    agent, headers = await site(hub, account)
    workflow = await save(
        hub, account, "conversation_started", node("v", "set_variable", name="a", value=1)
    )
    services = hub.app[SERVICES]
    company_id = uuid.UUID(account.company_id)
    async with services.db.tenant(company_id) as conn:
        conversation = await conversations.create(
            conn, company_id=company_id, agent_id=uuid.UUID(agent["id"])
        )
    # Committed and kept, but its job never reached the queue (a crash, Redis down).
    outbox_id = await keep(services, company_id, conversation, "lost-1")
    engine = services.workflows
    await engine.stop_timers()
    assert await executions(hub, account, workflow["id"]) == []
    async with services.db.system() as conn:
        await conn.execute(
            "UPDATE workflow_events SET retry_at = now() - interval '1 second' WHERE id = $1",
            outbox_id,
        )
    assert await engine.tick() >= 1
    [run] = await finished(hub, account, workflow["id"])
    assert run["status"] == "success"
    async with services.db.system() as conn:
        assert (
            await conn.fetchval("SELECT count(*) FROM workflow_events WHERE id = $1", outbox_id)
            == 0
        )


async def test_one_run_job_delivered_twice_runs_once(hub, receiver):
    account = await signup(hub)
    workflow = await save(hub, account, "webhook", node("hook", "webhook", url=receiver.url))
    stored = await (
        await hub.get(f"/api/workflows/{workflow['id']}", headers=account.headers)
    ).json()
    services = hub.app[SERVICES]
    company_id = uuid.UUID(account.company_id)
    async with services.db.tenant(company_id) as conn:
        execution, _ = await workflow_store.create_execution(
            conn,
            company_id=company_id,
            workflow={**stored, "id": uuid.UUID(stored["id"])},
            triggered_by="webhook",
            trigger_data={},
            dedupe_key="twice",
            depth=0,
            token="job-token",
            lease_seconds=60,
        )
    receiver.delay = 0.3
    job = run_job(company_id, execution["id"], "job-token")
    await asyncio.gather(services.workflows.on_run(job), services.workflows.on_run(job))
    await services.workflows.on_run(job)
    assert len(receiver.requests) == 1
    [run] = await executions(hub, account, workflow["id"])
    assert run["status"] == "success"


async def test_an_unmatched_dry_run_never_runs_for_real(hub, receiver):
    account = await signup(hub)
    workflow = await save(
        hub,
        account,
        "message_received",
        node("hook", "webhook", url=receiver.url),
        config={"keywords": ["urgent"]},
    )
    run = await (
        await hub.post(
            f"/api/workflows/{workflow['id']}/test",
            json={"testData": {"message": "hello"}},
            headers=account.headers,
        )
    ).json()
    assert run["trigger_matched"] is False and run["status"] == "success"
    await hub.app[SERVICES].workflows.tick()
    await settle(hub)
    assert receiver.requests == []
    [stored] = await executions(hub, account, workflow["id"])
    assert stored["status"] == "success" and stored["test"] is True


async def test_a_node_that_overruns_its_time_fails(hub, fake):
    account = await signup(hub)
    workflow = await save(
        hub,
        account,
        "webhook",
        node(
            "slow",
            "llm",
            mode="classify",
            input="{{trigger.text}}",
            categories=["a", "b"],
            timeout_seconds=0.3,
        ),
    )
    fake.then(Reply(text="a", delay=2))
    await webhook_trigger(hub, workflow, {"text": "hello"})
    [run] = await finished(hub, account, workflow["id"])
    assert run["status"] == "failed" and steps(run)["slow"]["error"] == "timed out after 0.3 s"


async def test_workflows_run_once_per_event_across_processes(base_settings, redis_url, make_client):
    """Scaled out: a web process publishes, two workers share the queue."""
    settings = base_settings.with_overrides(
        redis_url=redis_url, redis_prefix=f"wf-{uuid.uuid4().hex[:8]}"
    )
    web = await make_client(redis_url=settings.redis_url, redis_prefix=settings.redis_prefix)
    workers = [await open_services(settings, runtime.parts) for _ in range(2)]
    try:
        for worker in workers:
            runtime.install(worker)
            await worker.jobs.start()
        account = await signup(web)
        workflow = await save(
            web, account, "contact_created", node("t", "add_tag", tag="seen", target="contact")
        )
        for n in range(5):
            response = await web.post(
                "/api/crm/contacts", json={"email": f"c{n}@example.com"}, headers=account.headers
            )
            assert response.status == 201
        runs = await finished(web, account, workflow["id"], count=5)
        await asyncio.sleep(0.5)  # a duplicate would have shown by now
        runs = await executions(web, account, workflow["id"])
        assert len(runs) == 5 and all(r["status"] == "success" for r in runs)
        listed = await (await web.get("/api/crm/contacts?limit=10", headers=account.headers)).json()
        assert all(c["tags"] == ["seen"] for c in listed["contacts"])
    finally:
        for worker in workers:
            await close_services(worker)


async def test_a_webhook_loop_through_the_hub_stops(hub):
    account = await signup(hub)
    workflow = await save(hub, account, "webhook", node("v", "set_variable", name="a", value=1))
    body = b"{}"
    headers = {"X-Syntera-Signature": signature(workflow["secret"], body), "X-Syntera-Depth": "5"}
    refused = await hub.post(workflow["webhook_url"], data=body, headers=headers)
    assert refused.status == 409
    headers["X-Syntera-Depth"] = "2"
    accepted = await hub.post(workflow["webhook_url"], data=body, headers=headers)
    assert accepted.status == 202
    [run] = await finished(hub, account, workflow["id"])
    assert run["depth"] == 3


async def test_a_run_left_by_a_dead_runner_resumes_where_it_stood(hub):
    account = await signup(hub)
    agent, headers = await site(hub, account)
    workflow = await save(
        hub,
        account,
        "webhook",
        node("hi", "send_message", content="once"),
        node("after", "set_variable", name="resumed", value=True),
    )
    services = hub.app[SERVICES]
    company_id = uuid.UUID(account.company_id)
    started = await start(hub, agent["id"], headers)
    stored = await (
        await hub.get(f"/api/workflows/{workflow['id']}", headers=account.headers)
    ).json()
    # As a runner that died right after "hi" committed would have left it.
    async with services.db.tenant(company_id) as conn:
        execution, _ = await workflow_store.create_execution(
            conn,
            company_id=company_id,
            workflow={**stored, "id": uuid.UUID(stored["id"])},
            triggered_by="webhook",
            trigger_data={},
            dedupe_key="crashed",
            depth=0,
            token="dead-runner",
            lease_seconds=-1,
            state={
                "context": {"trigger": {}, "conversation": {"id": started["id"]}},
                "vars": {},
                "outputs": {"trigger": {}, "hi": {"message_id": "m"}},
                "done": ["trigger", "hi"],
                "branches": {},
            },
            trace=[
                {"node_id": "trigger", "type": "trigger", "status": "success"},
                {"node_id": "hi", "type": "send_message", "status": "success"},
            ],
        )
    [run] = await finished(hub, account, workflow["id"])
    assert run["status"] == "success"
    assert [e["node_id"] for e in run["trace"]] == ["trigger", "hi", "after"]
    assert await transcript(hub, account, started["id"]) == []  # "hi" did not run again


async def test_a_workflow_that_fires_itself_stops_at_the_depth_limit(hub):
    account = await signup(hub)
    workflow = await save(
        hub,
        account,
        "contact_updated",
        node("again", "update_contact", fields={"company_name": "{{contact.company_name}}+"}),
    )
    contact = await (
        await hub.post(
            "/api/crm/contacts", json={"email": "loop@example.com"}, headers=account.headers
        )
    ).json()
    await hub.patch(
        f"/api/crm/contacts/{contact['id']}", json={"company_name": "A"}, headers=account.headers
    )

    async def stopped():
        runs = await executions(hub, account, workflow["id"])
        return runs if any(r["status"] == "failed" for r in runs) else None

    runs = await eventually(stopped)
    await settle(hub)
    runs = await executions(hub, account, workflow["id"])
    assert sorted(r["depth"] for r in runs) == [0, 1, 2, 3, 4, 5, 6]
    deepest = max(runs, key=lambda r: r["depth"])
    assert deepest["status"] == "failed" and "depth limit" in deepest["error"]
    final = await (
        await hub.get(f"/api/crm/contacts/{contact['id']}", headers=account.headers)
    ).json()
    assert final["company_name"] == "A" + "+" * 6


# --- failures that repeat end, recorded ------------------------------------------


async def test_a_webhook_delivery_committed_while_the_queue_is_down_is_accepted(
    fake, make_client, redis_url, caplog
):
    hub = await make_client(redis_url=redis_url)
    account = await signup(hub)
    workflow = await save(hub, account, "webhook", node("v", "set_variable", name="a", value=1))
    services = hub.app[SERVICES]
    reachable = services.jobs.client
    services.jobs.client = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    try:
        response = await webhook_trigger(hub, workflow, {"order": "B-2"}, key="down-1")
        assert response.status < 300, await response.text()
        execution_id = (await response.json())["execution_id"]
    finally:
        await services.jobs.client.aclose()
        services.jobs.client = reachable
    failed = [r for r in caplog.records if '"job_enqueue_failed"' in r.getMessage()]
    assert failed and failed[0].exc_info is not None  # with its traceback
    metrics = await (await hub.get("/metrics")).text()
    assert 'job_enqueue_failures_total{kind="workflow.run"} 1.0' in metrics
    # The delivery is durable: the run waits, leased, for the timer to take it over.
    [run] = await executions(hub, account, workflow["id"])
    assert run["id"] == execution_id and run["status"] == "running"


async def test_a_run_that_crashes_its_runner_every_time_ends_failed(hub, caplog):
    account = await signup(hub)
    workflow = await save(hub, account, "webhook", node("v", "set_variable", name="a", value=1))
    stored = await (
        await hub.get(f"/api/workflows/{workflow['id']}", headers=account.headers)
    ).json()
    services = hub.app[SERVICES]
    company_id = uuid.UUID(account.company_id)
    # A graph kept by an older version, with a node type this one no longer has:
    # the engine itself fails on it, outside any node, on every runner.
    retired = {"id": "old", "type": "retired_node_type", "data": {}}
    async with services.db.tenant(company_id) as conn:
        await workflow_store.create_execution(
            conn,
            company_id=company_id,
            workflow={
                **stored,
                "id": uuid.UUID(stored["id"]),
                "nodes": [*stored["nodes"], retired],
                "edges": [*stored["edges"], {"id": "e-old", "source": "v", "target": "old"}],
            },
            triggered_by="webhook",
            trigger_data={},
            dedupe_key="poison",
            depth=0,
            token="gone-runner",
            lease_seconds=-1,
        )
    [run] = await finished(hub, account, workflow["id"])
    assert run["status"] == "failed", run
    assert run["error"].startswith("given up: its run stopped 3 times without finishing")
    assert "retired_node_type" in run["error"]  # the last crash says why
    crashes = [r for r in caplog.records if '"workflow_execution_crashed"' in r.getMessage()]
    assert len(crashes) == 2 and all(r.exc_info for r in crashes)
    await asyncio.sleep(0.3)  # many ticks: nothing takes it up again
    [still] = await executions(hub, account, workflow["id"])
    assert still["status"] == "failed" and still["finished_at"] == run["finished_at"]


async def test_an_event_never_handled_ends_as_a_failed_execution(hub, caplog):
    account = await signup(hub)
    agent, headers = await site(hub, account)
    workflow = await save(
        hub, account, "conversation_started", node("v", "set_variable", name="a", value=1)
    )
    services = hub.app[SERVICES]
    company_id = uuid.UUID(account.company_id)
    engine = services.workflows
    await engine.stop_timers()  # tick by hand
    engine.settings.outbox_retry_seconds = 0
    await services.jobs.stop()  # whatever takes the event's job never handles it
    async with services.db.tenant(company_id) as conn:
        conversation = await conversations.create(
            conn, company_id=company_id, agent_id=uuid.UUID(agent["id"])
        )
    outbox_id = await keep(services, company_id, conversation, "never-1")
    async with services.db.system() as conn:
        await conn.execute(
            "UPDATE workflow_events SET retry_at = now() - interval '1 second' WHERE id = $1",
            outbox_id,
        )
    for _ in range(4):
        await engine.tick()
    [run] = await executions(hub, account, workflow["id"])
    assert run["status"] == "failed" and run["trace"] == []
    assert run["error"].startswith("its trigger event was queued again 3 times and never handled")
    async with services.db.system() as conn:
        left = await conn.fetchval("SELECT count(*) FROM workflow_events WHERE id = $1", outbox_id)
    assert left == 0
    # Each queueing failed (the queue had stopped): logged with its traceback, counted.
    failed = [r for r in caplog.records if '"job_enqueue_failed"' in r.getMessage()]
    assert len(failed) == 3 and all(r.exc_info for r in failed)
    metrics = (await (await hub.get("/metrics")).text()).splitlines()
    assert 'job_enqueue_failures_total{kind="workflow.event"} 3.0' in metrics
