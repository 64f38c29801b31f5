"""The workflow REST API: saving and checking graphs, tenancy, roles, the dry
run, executions and the inbound webhook trigger."""

from __future__ import annotations

import uuid

import pytest

from hub import jsoncodec
from hub.auth import mint_token
from hub.services import SERVICES
from hub.store import conversations
from hub.workflows import signature
from tests.helpers import assert_error, signup
from tests.workflow_helpers import TRIGGER, chain, executions, finished, node, save, steps

ESCALATION = dict(
    trigger_type="message_received",
    config={"keywords": ["urgent", "emergency"]},
)


def escalation_nodes():
    return [
        node("notify", "notify", title="Urgent: {{message.content}}", role="owner"),
        node("handoff", "handoff", reason="The customer says it is urgent"),
    ]


async def count(client, company_id, table: str) -> int:
    async with client.app[SERVICES].db.tenant(uuid.UUID(company_id)) as conn:
        return await conn.fetchval(f"SELECT count(*) FROM {table}")


async def test_workflow_crud_in_the_seed_shape(client, account):
    created = await save(
        client,
        account,
        ESCALATION["trigger_type"],
        *escalation_nodes(),
        config=ESCALATION["config"],
        name="Support Escalation",
        description="Escalate urgent issues",
    )
    assert created["name"] == "Support Escalation" and created["enabled"] is True
    assert created["trigger_config"] == {"keywords": ["urgent", "emergency"], "match": "any"}
    assert created["version"] == 1 and created["secret"].startswith("whsec_")
    assert created["webhook_url"] is None and created["next_run_at"] is None

    listed = await (await client.get("/api/workflows", headers=account.headers)).json()
    assert [w["id"] for w in listed["workflows"]] == [created["id"]]
    assert {"id", "name", "description", "enabled", "trigger_type", "created_at"} <= set(
        listed["workflows"][0]
    )

    path = f"/api/workflows/{created['id']}"
    renamed = await (
        await client.patch(path, json={"name": "Escalate"}, headers=account.headers)
    ).json()
    assert renamed["name"] == "Escalate" and renamed["version"] == 1  # not a new definition
    disabled = await (
        await client.patch(path, json={"enabled": False}, headers=account.headers)
    ).json()
    assert disabled["enabled"] is False and disabled["version"] == 1
    nodes, edges = chain(node("end", "end"))
    regraphed = await client.patch(
        path, json={"nodes": nodes, "edges": edges}, headers=account.headers
    )
    assert (await regraphed.json())["version"] == 2

    deleted = await client.delete(path, headers=account.headers)
    assert deleted.status == 200 and (await deleted.json())["deleted"] is True
    assert (await client.get(path, headers=account.headers)).status == 404


async def test_a_workflow_without_a_graph_starts_as_its_trigger(client, account):
    response = await client.post(
        "/api/workflows",
        json={"name": "Later", "trigger_type": "deal_created"},
        headers=account.headers,
    )
    assert response.status == 201
    assert (await response.json())["nodes"] == [TRIGGER]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "", "trigger_type": "deal_created"}, "name"),
        ({"name": "x", "trigger_type": "sometimes"}, "trigger_type"),
        ({"name": "x", "trigger_type": "deal_created", "surprise": 1}, "surprise"),
        (
            {"name": "x", "trigger_type": "schedule", "trigger_config": {"cron": "soon"}},
            "trigger_config.cron",
        ),
        (
            {"name": "x", "trigger_type": "deal_created", "nodes": [{"id": "a", "type": "end"}]},
            "nodes",
        ),
        (
            {
                "name": "x",
                "trigger_type": "deal_created",
                "nodes": [
                    TRIGGER,
                    {"id": "w", "type": "webhook", "data": {"url": "https://x", "retries": 9}},
                ],
            },
            "nodes.w.data.retries",
        ),
        ({"name": "x", "trigger_type": "deal_created", "nodes": [TRIGGER] * 101}, "nodes"),
    ],
)
async def test_bad_workflows_are_refused_and_nothing_is_saved(client, account, body, field):
    before = await count(client, account.company_id, "workflows")
    response = await client.post("/api/workflows", json=body, headers=account.headers)
    assert response.status == 400
    error = await response.json()
    assert_error(error, "VALIDATION_ERROR")
    assert any(k.startswith(field) for k in error["details"]["fields"]), error
    assert await count(client, account.company_id, "workflows") == before


async def test_a_bad_patch_changes_nothing(client, account):
    workflow = await save(
        client, account, "deal_created", node("m", "set_variable", name="a", value=1)
    )
    path = f"/api/workflows/{workflow['id']}"
    for patch in (
        {"trigger_type": "schedule"},  # the schedule needs a cron expression
        {"edges": [{"id": "e", "source": "trigger", "target": "nowhere"}]},
        {"nodes": [TRIGGER, TRIGGER]},
    ):
        response = await client.patch(path, json=patch, headers=account.headers)
        assert response.status == 400, patch
    current = await (await client.get(path, headers=account.headers)).json()
    assert current == workflow


async def test_schedules_know_their_next_run(client, account):
    workflow = await save(
        client,
        account,
        "schedule",
        node("v", "set_variable", name="a", value=1),
        config={"cron": "0 9 * * 1-5", "timezone": "Europe/Paris"},
    )
    assert workflow["next_run_at"] is not None
    paused = await client.patch(
        f"/api/workflows/{workflow['id']}", json={"enabled": False}, headers=account.headers
    )
    assert (await paused.json())["next_run_at"] is None


async def test_workflows_are_per_company_and_deleting_needs_an_admin(
    client, account, base_settings
):
    workflow = await save(client, account, "deal_created")
    other = await signup(client, "Other Co")
    path = f"/api/workflows/{workflow['id']}"
    for method, suffix, body in [
        ("GET", "", None),
        ("PATCH", "", {"name": "mine"}),
        ("DELETE", "", None),
        ("POST", "/test", {"testData": {}}),
        ("GET", "/executions", None),
    ]:
        response = await client.request(method, path + suffix, json=body, headers=other.headers)
        assert response.status == 404, (method, suffix)
    assert (await (await client.get("/api/workflows", headers=other.headers)).json())[
        "workflows"
    ] == []

    member, _ = mint_token(
        base_settings,
        user_id=uuid.uuid4(),
        email="m@example.com",
        company_id=uuid.UUID(account.company_id),
        role="member",
    )
    refused = await client.delete(path, headers={"Authorization": f"Bearer {member}"})
    assert refused.status == 403
    assert (await client.get(path, headers=account.headers)).status == 200


async def test_execution_limits(client, account):
    workflow = await save(client, account, "deal_created")
    path = f"/api/workflows/{workflow['id']}/executions"
    for bad in ("0", "101", "ten"):
        response = await client.get(f"{path}?limit={bad}", headers=account.headers)
        assert response.status == 400, bad
    assert (await client.get(path, headers=account.headers)).status == 200


async def test_the_test_run_simulates_and_writes_nothing_but_its_execution(client, account):
    workflow = await save(
        client,
        account,
        ESCALATION["trigger_type"],
        *escalation_nodes(),
        config=ESCALATION["config"],
    )
    path = f"/api/workflows/{workflow['id']}/test"
    company_id = uuid.UUID(account.company_id)
    async with client.app[SERVICES].db.tenant(company_id) as conn:
        conversation = await conversations.create(conn, company_id=company_id, agent_id=None)
    tables = ("notifications", "messages", "contacts", "deals", "conversations")
    before = {t: await count(client, account.company_id, t) for t in tables}

    test_data = {"message": "This is urgent!", "conversation_id": str(conversation["id"])}
    response = await client.post(path, json={"testData": test_data}, headers=account.headers)
    assert response.status == 200, await response.text()
    run = await response.json()
    assert run["test"] is True and run["status"] == "success" and run["trigger_matched"] is True
    trace = steps(run)
    assert list(trace) == ["trigger", "notify", "handoff"]
    assert trace["notify"]["output"] == {
        "simulated": True,
        "title": "Urgent: This is urgent!",
        "body": None,
        "to": {"role": "owner"},
    }
    assert trace["handoff"]["output"]["simulated"] is True
    assert all(entry["duration_ms"] >= 0 for entry in run["trace"])

    quiet = await (
        await client.post(path, json={"testData": {"message": "hello"}}, headers=account.headers)
    ).json()
    assert quiet["trigger_matched"] is False and quiet["trace"] == []

    assert {t: await count(client, account.company_id, t) for t in tables} == before
    async with client.app[SERVICES].db.tenant(company_id) as conn:
        assert (await conversations.for_turn(conn, conversation["id"]))["ai_paused"] is False
    runs = await executions(client, account, workflow["id"])
    assert [r["test"] for r in runs] == [True, True]


async def test_a_test_run_reports_a_failing_node(client, account):
    workflow = await save(
        client,
        account,
        "message_received",
        node("m", "send_message", content="Hello {{contact.first_name}}"),
    )
    run = await (
        await client.post(
            f"/api/workflows/{workflow['id']}/test",
            json={"testData": {"message": "hi"}},  # no conversation to send into
            headers=account.headers,
        )
    ).json()
    assert run["status"] == "failed"
    assert steps(run)["m"]["error"] == "this run has no conversation"
    assert "node m (send_message)" in run["error"]


async def test_inbound_webhook_trigger(client, account):
    workflow = await save(
        client,
        account,
        "webhook",
        node("v", "set_variable", name="order", value="{{trigger.order.id}}"),
    )
    assert workflow["webhook_url"] == f"/public/workflows/{workflow['id']}/webhook"
    url = workflow["webhook_url"]
    body = jsoncodec.dumps({"order": {"id": "A-17"}})
    signed = {"X-Syntera-Signature": signature(workflow["secret"], body), "Idempotency-Key": "k1"}

    unsigned = await client.post(url, data=body)
    assert unsigned.status == 401
    assert_error(await unsigned.json(), "INVALID_SIGNATURE")
    forged = await client.post(url, data=body, headers={"X-Syntera-Signature": "sha256=00"})
    assert (await forged.json())["code"] == "INVALID_SIGNATURE"
    assert await executions(client, account, workflow["id"]) == []

    accepted = await client.post(url, data=body, headers=signed)
    assert accepted.status == 202, await accepted.text()
    first = await accepted.json()
    assert first["duplicate"] is False
    again = await (await client.post(url, data=body, headers=signed)).json()
    assert again == {"execution_id": first["execution_id"], "duplicate": True}

    [run] = await finished(client, account, workflow["id"])
    assert run["status"] == "success" and run["triggered_by"] == "webhook"
    assert steps(run)["v"]["output"] == {"name": "order", "value": "A-17"}

    not_json = b"[1, 2]"
    refused = await client.post(
        url, data=not_json, headers={"X-Syntera-Signature": signature(workflow["secret"], not_json)}
    )
    assert refused.status == 400
    for missing in (str(uuid.uuid4()), "not-an-id"):
        gone = await client.post(f"/public/workflows/{missing}/webhook", data=body, headers=signed)
        assert gone.status == 404

    other = await save(client, account, "deal_created")  # not a webhook workflow
    wrong = await client.post(
        f"/public/workflows/{other['id']}/webhook",
        data=body,
        headers={"X-Syntera-Signature": signature(other["secret"], body)},
    )
    assert wrong.status == 404


async def test_cancelling_an_execution(client, account):
    workflow = await save(client, account, "webhook", node("wait", "delay", hours=1))
    body = b"{}"
    accepted = await client.post(
        workflow["webhook_url"],
        data=body,
        headers={"X-Syntera-Signature": signature(workflow["secret"], body)},
    )
    execution_id = (await accepted.json())["execution_id"]
    [waiting] = await finished(client, account, workflow["id"])
    assert waiting["status"] == "running" and waiting["resume_at"] is not None

    path = f"/api/workflows/{workflow['id']}/executions/{execution_id}"
    cancelled = await client.post(f"{path}/cancel", headers=account.headers)
    assert cancelled.status == 200
    assert (await cancelled.json())["status"] == "cancelled"
    again = await client.post(f"{path}/cancel", headers=account.headers)
    assert again.status == 409
    fetched = await (await client.get(path, headers=account.headers)).json()
    assert fetched["status"] == "cancelled" and fetched["resume_at"] is None
