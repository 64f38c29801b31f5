"""GDPR: export and erasure per contact, company export, retention."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from datetime import UTC, datetime, timedelta

from hub import gdpr
from hub.auth import mint_token
from hub.conversations import append_message, hand_off
from hub.db import connect
from hub.gdpr import enforce_retention
from hub.services import SERVICES
from hub.store import conversations, knowledge
from tests.helpers import assert_error, signup


async def person_with_history(client, account):
    token = uuid.uuid4().hex[:10]
    email = f"erase-me-{token}@example.com"
    secret = f"my card number is 4111-{token}"
    contact = await (
        await client.post(
            "/api/crm/contacts",
            json={"email": email, "first_name": "Erin", "last_name": "Eraseme"},
            headers=account.headers,
        )
    ).json()
    services = client.app[SERVICES]
    company_id = uuid.UUID(account.company_id)
    async with services.db.tenant(company_id) as conn:
        conversation = await conversations.create(
            conn,
            company_id=company_id,
            agent_id=None,
            contact_id=uuid.UUID(contact["id"]),
            metadata={"ip_address": "203.0.113.9", "email": email},
        )
        for sender, text in (("user", secret), ("agent", f"Thanks {email}, noted.")):
            await append_message(
                services.db,
                conn,
                company_id=company_id,
                conversation_id=conversation["id"],
                sender_type=sender,
                content=text,
                ai_metadata={"model": "gpt-4o-mini", "prompt_tokens": 10, "completion_tokens": 5}
                if sender == "agent"
                else None,
            )
        # The AI handed off, quoting the person in the staff notification.
        await hand_off(
            services.db,
            conn,
            company_id=company_id,
            conversation_id=conversation["id"],
            reason=f"{email} asked for a refund",
            by="agent",
        )
        await conn.execute(
            "INSERT INTO conversation_ratings (company_id, conversation_id, rating, comment)"
            " VALUES ($1, $2, 4, $3)",
            company_id,
            conversation["id"],
            f"from {email}",
        )
    deal = await (
        await client.post(
            "/api/crm/deals",
            json={"title": "Erin's plan", "value": 100, "contact_id": contact["id"]},
            headers=account.headers,
        )
    ).json()
    return contact, conversation, deal, email, secret


async def test_contact_export(client, account):
    contact, conversation, deal, email, secret = await person_with_history(client, account)
    response = await client.get(
        f"/api/gdpr/contacts/{contact['id']}/export", headers=account.headers
    )
    assert response.status == 200
    assert "attachment" in response.headers["Content-Disposition"]
    data = json.loads(await response.read())
    assert data["contact"]["email"] == email
    [exported] = data["conversations"]
    assert exported["id"] == str(conversation["id"]) and exported["rating"] == 4
    assert [m["content"] for m in exported["messages"]][0] == secret
    assert [d["id"] for d in data["deals"]] == [deal["id"]]
    other = await signup(client)
    refused = await client.get(f"/api/gdpr/contacts/{contact['id']}/export", headers=other.headers)
    assert refused.status == 404


async def test_erasure_leaves_no_trace_but_keeps_counts(client, account, database_url):
    contact, conversation, deal, email, secret = await person_with_history(client, account)
    today = datetime.now(UTC).date()
    range_ = f"startDate={today - timedelta(days=1)}&endDate={today}"
    before = await (
        await client.get(f"/api/analytics/overview?{range_}", headers=account.headers)
    ).json()
    costs_before = await (
        await client.get(f"/api/analytics/costs?{range_}", headers=account.headers)
    ).json()

    response = await client.delete(f"/api/gdpr/contacts/{contact['id']}", headers=account.headers)
    assert response.status == 200
    assert await response.json() == {"erased": True, "conversations": 1, "messages": 2}

    services = client.app[SERVICES]
    async with services.db.system() as conn:
        columns = await conn.fetch(
            """SELECT table_name, column_name FROM information_schema.columns
               WHERE table_schema = 'public' AND data_type IN ('text', 'jsonb', 'ARRAY')"""
        )
        for column in columns:
            hits = await conn.fetchval(
                f'SELECT count(*) FROM "{column["table_name"]}" '
                f'WHERE "{column["column_name"]}"::text ILIKE $1 OR "{column["column_name"]}"::text ILIKE $2',
                f"%{email}%",
                f"%{secret}%",
            )
            assert hits == 0, (column["table_name"], column["column_name"])

    after = await (
        await client.get(f"/api/analytics/overview?{range_}", headers=account.headers)
    ).json()
    assert after["totalConversations"] == before["totalConversations"]
    assert after["userSatisfaction"] == before["userSatisfaction"]
    costs_after = await (
        await client.get(f"/api/analytics/costs?{range_}", headers=account.headers)
    ).json()
    assert costs_after["totalTokens"] == costs_before["totalTokens"]
    still = await (await client.get(f"/api/crm/deals/{deal['id']}", headers=account.headers)).json()
    assert still["contact_id"] is None and still["value"] == 100

    log = await (await client.get("/api/audit-log", headers=account.headers)).json()
    assert any(
        e["method"] == "DELETE" and e["path"] == f"/api/gdpr/contacts/{contact['id']}"
        for e in log["entries"]
    )
    assert (
        await client.delete(f"/api/gdpr/contacts/{contact['id']}", headers=account.headers)
    ).status == 404


async def test_erasure_is_for_owners_and_admins(client, account, base_settings):
    contact, *_ = await person_with_history(client, account)
    member, _ = mint_token(
        base_settings.ensure_jwt_secret(),
        user_id=uuid.uuid4(),
        company_id=uuid.UUID(account.company_id),
        role="member",
        email=None,
    )
    response = await client.delete(
        f"/api/gdpr/contacts/{contact['id']}", headers={"Authorization": f"Bearer {member}"}
    )
    assert response.status == 403
    assert (
        await client.get(f"/api/crm/contacts/{contact['id']}", headers=account.headers)
    ).status == 200


async def test_company_export(client, account):
    await person_with_history(client, account)
    services = client.app[SERVICES]
    company_id = uuid.UUID(account.company_id)
    async with services.db.tenant(company_id) as conn:
        document = await knowledge.create_document(
            conn,
            company_id=company_id,
            agent_id=None,
            title="Handbook",
            description=None,
            filename="handbook.txt",
            content_type="text/plain",
            data=b"Returns are free within a month.",
        )
        await knowledge.replace_chunks(
            conn,
            company_id=company_id,
            document_id=document["id"],
            agent_id=None,
            model="test-model",
            chunks=[(0, None, None, "Returns are free within a month.", 7, [0.5, 0.5])],
        )
        await knowledge.finish(conn, document["id"], chunk_count=1, error=None)
    invited = await client.post(
        "/api/invitations", json={"email": "invited@example.com"}, headers=account.headers
    )
    assert invited.status == 201
    response = await client.get("/api/gdpr/export", headers=account.headers)
    assert response.status == 200
    # Streamed, and still stamped like every response.
    assert response.headers["X-Request-Id"] and response.headers["X-RateLimit-Limit"]
    data = json.loads(await response.read())
    assert data["company_id"] == account.company_id
    assert len(data["conversations"]) == 1 and len(data["messages"]) == 2
    assert [d["title"] for d in data["documents"]] == ["Handbook"]
    assert [c["content"] for c in data["chunks"]] == ["Returns are free within a month."]
    assert "embedding" not in data["chunks"][0]
    assert all("password_hash" not in u for u in data["users"])
    assert [i["email"] for i in data["invitations"]] == ["invited@example.com"]
    assert "token_hash" not in data["invitations"][0]
    other = await signup(client)
    theirs = json.loads(await (await client.get("/api/gdpr/export", headers=other.headers)).read())
    assert theirs["messages"] == [] and len(theirs["users"]) == 1
    assert theirs["invitations"] == []


async def test_retention(client, account):
    services = client.app[SERVICES]
    company_id = uuid.UUID(account.company_id)
    assert (await (await client.get("/api/gdpr/retention", headers=account.headers)).json()) == {
        "days": None
    }
    for bad in ({"days": 0}, {"days": 5000}, {"days": "30"}, {}):
        response = await client.put("/api/gdpr/retention", json=bad, headers=account.headers)
        assert response.status == 400, bad
    assert (
        await (
            await client.put("/api/gdpr/retention", json={"days": 30}, headers=account.headers)
        ).json()
    ) == {"days": 30}
    other = await signup(client)  # no retention: its old data stays
    ids = {}
    for name, who in (("mine_old", account), ("mine_new", account), ("theirs_old", other)):
        cid = uuid.UUID(who.company_id)
        async with services.db.tenant(cid) as conn:
            conversation = await conversations.create(conn, company_id=cid, agent_id=None)
            if name.endswith("old"):
                await conn.execute(
                    "UPDATE conversations SET started_at = now() - interval '40 days'"
                    " WHERE id = $1",
                    conversation["id"],
                )
        ids[name] = (cid, conversation["id"])
    deleted = await enforce_retention(services)
    assert deleted.get(str(company_id)) == 1
    for name, (cid, conversation_id) in ids.items():
        async with services.db.tenant(cid) as conn:
            exists = await conversations.get(conn, conversation_id) is not None
        assert exists == (name != "mine_old"), name
    assert (
        await (
            await client.put("/api/gdpr/retention", json={"days": None}, headers=account.headers)
        ).json()
    ) == {"days": None}


async def test_company_export_is_for_owners(client, account, base_settings):
    admin, _ = mint_token(
        base_settings.ensure_jwt_secret(),
        user_id=uuid.uuid4(),
        company_id=uuid.UUID(account.company_id),
        role="admin",
        email=None,
    )
    response = await client.get("/api/gdpr/export", headers={"Authorization": f"Bearer {admin}"})
    assert response.status == 403
    assert_error(await response.json(), "FORBIDDEN")


async def test_a_failing_retention_is_logged_counted_and_shown_in_healthz(
    make_client, base_settings, caplog
):
    hub = await make_client()
    services = hub.app[SERVICES]
    state = services.loops.state(gdpr.RETENTION_LOOP)
    for _ in range(500):  # its own first run, at start-up
        if state.last_success_at is not None:
            break
        await asyncio.sleep(0.01)
    # The same process's retention, on a database connection pool that has closed.
    broken = await connect(base_settings)
    await broken.pool.close()
    failing = dataclasses.replace(services, db=broken)
    loop = asyncio.create_task(gdpr.run_retention(failing, every=0.02))
    try:
        for _ in range(500):
            if services.metrics.background_failures.labels("retention")._value.get() >= 2:
                break
            await asyncio.sleep(0.01)
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
    # Logged with its traceback, and the loop went on after it.
    failures = [r for r in caplog.records if '"loop":"retention"' in r.getMessage()]
    assert len(failures) >= 2 and all(r.exc_info for r in failures)
    metrics = await (await hub.get("/metrics")).text()
    assert 'background_failures_total{loop="retention"}' in metrics
    # Still serving, so still in rotation (200), but not silent about it.
    health = await hub.get("/healthz")
    assert health.status == 200
    body = await health.json()
    assert body["status"] == "degraded" and body["database"] == "ok"
    assert body["retention"].startswith("failing: ")

    # The next run that works clears it.
    await services.loops.attempt(gdpr.RETENTION_LOOP, lambda: gdpr.enforce_retention(services))
    body = await (await hub.get("/healthz")).json()
    assert (body["status"], body["retention"]) == ("ok", "ok")
