"""Conversation upkeep: idle conversations end once; lost in-process turns are recovered."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

from hub import lifecycle
from hub.conversations import append_message
from hub.db import connect
from hub.services import SERVICES
from hub.store import conversations
from tests.helpers import signup


async def test_idle_conversations_end_once(client):
    account = await signup(client)
    services = client.app[SERVICES]
    company_id = uuid.UUID(account.company_id)
    async with services.db.tenant(company_id) as conn:
        quiet = await conversations.create(conn, company_id=company_id, agent_id=None)
        busy = await conversations.create(conn, company_id=company_id, agent_id=None)
        await conn.execute(
            "UPDATE conversations SET started_at = now() - interval '2 hours' WHERE id = $1",
            quiet["id"],
        )
    ended = []

    async def record(event):
        if event.type == "conversation.ended":
            ended.append((event.data["id"], event.data["by"]))

    services.events.subscribe(record)
    later = datetime.now(UTC) + timedelta(minutes=1)
    assert await lifecycle.end_idle(services, now=later) >= 1
    assert await lifecycle.end_idle(services, now=later) == 0
    await asyncio.sleep(0.05)
    assert ended.count((str(quiet["id"]), "idle")) == 1
    async with services.db.tenant(company_id) as conn:
        assert (await conversations.get(conn, quiet["id"]))["status"] == "ended"
        assert (await conversations.get(conn, busy["id"]))["status"] == "active"


async def test_unanswered_messages_are_recovered_after_a_restart(client):
    account = await signup(client)
    services = client.app[SERVICES]
    company_id = uuid.UUID(account.company_id)
    agent = await (
        await client.post("/api/agents", json={"name": "A"}, headers=account.headers)
    ).json()
    async with services.db.tenant(company_id) as conn:
        conversation = await conversations.create(
            conn, company_id=company_id, agent_id=uuid.UUID(agent["id"])
        )
        # Stored, but its turn was only in the memory of a process that stopped.
        await append_message(
            services.db,
            conn,
            company_id=company_id,
            conversation_id=conversation["id"],
            sender_type="user",
            content="Are you still there?",
        )
    assert await lifecycle.recover_turns(services) >= 1
    await services.jobs.join()
    async with services.db.tenant(company_id) as conn:
        kinds = await conn.fetch(
            "SELECT sender_type FROM messages WHERE conversation_id = $1 ORDER BY seq",
            conversation["id"],
        )
    assert [k["sender_type"] for k in kinds] == ["user", "agent"]


async def test_a_failing_idle_check_is_logged_counted_and_the_loop_goes_on(
    client, base_settings, caplog
):
    services = client.app[SERVICES]
    broken = await connect(base_settings)
    await broken.pool.close()  # the database connection is gone
    failures = services.metrics.background_failures.labels("idle_conversations")
    before = failures._value.get()
    loop = asyncio.create_task(
        lifecycle.run_periodically(dataclasses.replace(services, db=broken), every=0.02)
    )
    try:
        for _ in range(500):
            if failures._value.get() >= before + 2:  # failed, and went on to fail again
                break
            await asyncio.sleep(0.01)
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
    assert failures._value.get() >= before + 2
    logged = [r for r in caplog.records if '"loop":"idle_conversations"' in r.getMessage()]
    assert len(logged) >= 2 and all(r.exc_info for r in logged)
    assert 'background_failures_total{loop="idle_conversations"}' in (
        await (await client.get("/metrics")).text()
    )
