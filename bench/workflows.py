"""Events per second through a five-node workflow, and what the engine adds per node.

    python -m bench.workflows [--events 500]

The workflow fires on `contact_created`: trigger → condition (the email is
the company's) → set_variable → add_tag (on the contact) → notify (the owner).
Each event is a contact created through hub.crm, so it travels the real path:
outbox → commit → queue → engine → nodes, with the state and trace saved
after every node.

Baseline: the same node functions called directly, one after another, each
writing node in its own transaction as the engine would — no queue, no
execution row, no trace. Setups:

- sequential, in-process: one event at a time; latency per event, engine
  against direct (the difference over five nodes is the engine's cost per node);
- in-process: the embedded mode's queue, all events at once (events/s);
- redis: the scaled mode — this process creates the contacts (as `web` would)
  and two `python -m agents_runtime` workers run the workflows (events/s).

Prints a table, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import time
import uuid
from pathlib import Path

from agents_runtime import runtime
from agents_runtime.llm import OfflineResponder
from agents_runtime.workflows.engine import fresh_state
from agents_runtime.workflows.nodes import ACTIONS, Step
from bench.common import scratch_database
from bench.report import emit, table
from hub import crm
from hub.config import Settings
from hub.services import Services, close_services, open_services
from hub.store import companies
from hub.store import workflows as store
from hub.workflow_graph import node_data, validate

REDIS_URL = (
    os.environ.get("BENCH_REDIS_URL")
    or os.environ.get("TEST_REDIS_URL")
    or "redis://127.0.0.1:6379/0"
)
ROOT = Path(__file__).resolve().parent.parent
NODES = [
    {"id": "trigger", "type": "trigger", "data": {}},
    {
        "id": "ours",
        "type": "condition",
        "data": {"field": "contact.email", "operator": "contains", "value": "@example.com"},
    },
    {
        "id": "greet",
        "type": "set_variable",
        "data": {"name": "greeting", "value": "Welcome, {{contact.email}}"},
    },
    {"id": "tag", "type": "add_tag", "data": {"tag": "new", "target": "contact"}},
    {"id": "tell", "type": "notify", "data": {"title": "New contact: {{contact.email}}"}},
]
EDGES = [
    {"id": "a", "source": "trigger", "target": "ours"},
    {"id": "b", "source": "ours", "target": "greet", "sourceHandle": "yes"},
    {"id": "c", "source": "greet", "target": "tag"},
    {"id": "d", "source": "tag", "target": "tell"},
]


async def company_with_workflow(
    services: Services, *, stored: bool = True
) -> tuple[uuid.UUID, dict]:
    """A company with an owner and the workflow (not stored: for the direct baseline)."""
    async with services.db.system() as conn:
        company = await companies.create(conn, f"Bench {uuid.uuid4().hex[:6]}")
        await conn.execute(
            "INSERT INTO users (company_id, email, role) VALUES ($1, $2, 'owner')",
            company["id"],
            f"owner-{uuid.uuid4().hex[:8]}@example.com",
        )
    config, nodes, edges = validate("contact_created", {}, NODES, EDGES)
    if not stored:
        return company["id"], {"id": uuid.uuid4(), "secret": "bench"}
    async with services.db.tenant(company["id"]) as conn:
        workflow = await store.create(
            conn,
            company["id"],
            {
                "name": "Welcome",
                "trigger_type": "contact_created",
                "trigger_config": config,
                "nodes": nodes,
                "edges": edges,
            },
            secret="bench",
        )
    return company["id"], workflow


async def new_contact(services: Services, company_id: uuid.UUID) -> dict:
    async with services.db.tenant(company_id) as conn:
        return await crm.create_contact(
            services.db, conn, company_id, {"email": f"{uuid.uuid4().hex[:12]}@example.com"}
        )


async def succeeded(services: Services, company_id: uuid.UUID) -> int:
    async with services.db.tenant(company_id) as conn:
        return await conn.fetchval(
            "SELECT count(*) FROM workflow_executions WHERE status = 'success'"
        )


async def wait_for_runs(services, company_id, count: int, within: float = 600) -> None:
    deadline = time.monotonic() + within
    while await succeeded(services, company_id) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {await succeeded(services, company_id)} of {count} runs")
        await asyncio.sleep(0.02)


async def direct(services: Services, n: int) -> float:
    """Milliseconds per event with the node functions called directly."""
    company_id, workflow = await company_with_workflow(services, stored=False)
    engine = services.workflows
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        contact = await new_contact(services, company_id)
        state = fresh_state({"trigger": contact, "contact": contact})
        state = json.loads(json.dumps(state, default=str))
        for node in NODES:
            step = Step(
                services=services,
                llm=None,
                webhooks=engine.webhooks,
                company_id=company_id,
                workflow=workflow,
                execution_id="direct",
                depth=0,
                node_id=node["id"],
                data=node_data(node),
                state=state,
                conn=None,
                simulate=False,
            )
            action = ACTIONS[node["type"]]
            if action.writes:
                async with services.db.tenant(company_id) as conn:
                    step.conn = conn
                    state["outputs"][node["id"]] = await action.run(step)
            else:
                state["outputs"][node["id"]] = await action.run(step)
        samples.append((time.perf_counter() - start) * 1000)
        await services.jobs.join()  # whatever the contact queued, outside the timing
    return statistics.median(samples)


async def in_process(settings: Settings, sequential_n: int, events: int) -> dict:
    services = await open_services(settings, runtime.parts)
    runtime.install(services, OfflineResponder())
    await services.jobs.start()
    try:
        baseline_ms = await direct(services, sequential_n)
        company_id, _ = await company_with_workflow(services)
        samples = []
        for _ in range(sequential_n):
            start = time.perf_counter()
            await new_contact(services, company_id)
            await services.jobs.join()
            samples.append((time.perf_counter() - start) * 1000)
        engine_ms = statistics.median(samples)
        await wait_for_runs(services, company_id, sequential_n)

        start = time.perf_counter()
        await asyncio.gather(*(new_contact(services, company_id) for _ in range(events)))
        await wait_for_runs(services, company_id, sequential_n + events)
        rate = events / (time.perf_counter() - start)
        return {"direct_ms": baseline_ms, "engine_ms": engine_ms, "events_per_s": rate}
    finally:
        await close_services(services)


async def over_redis(settings: Settings, events: int) -> float:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "REDIS_PREFIX": settings.redis_prefix,
        "JWT_SECRET": settings.jwt_secret,
        "LOG_LEVEL": "WARNING",
    }
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agents_runtime", cwd=ROOT, env=env
        )
        for _ in range(2)
    ]
    # This process only publishes, as `web` does
    services = await open_services(settings, runtime.parts)
    try:
        company_id, _ = await company_with_workflow(services)
        await new_contact(services, company_id)  # warm up: both workers answering
        await wait_for_runs(services, company_id, 1, within=60)
        start = time.perf_counter()
        await asyncio.gather(*(new_contact(services, company_id) for _ in range(events)))
        await wait_for_runs(services, company_id, events + 1)
        return events / (time.perf_counter() - start)
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            await asyncio.wait_for(worker.wait(), 30)
        await close_services(services)


async def main(events: int, sequential_n: int) -> dict:
    async with scratch_database() as url:
        settings = Settings(
            database_url=url,
            jwt_secret=secrets.token_urlsafe(48),
            data_dir=Path("/tmp/syntera-bench"),
            log_level="WARNING",
        )
        local = await in_process(settings, sequential_n, events)
        redis_settings = settings.with_overrides(
            redis_url=REDIS_URL, redis_prefix=f"bench-{uuid.uuid4().hex[:8]}"
        )
        redis_rate = await over_redis(redis_settings, events)
    nodes = len(NODES)
    figures = {
        "direct_per_event_p50_ms": round(local["direct_ms"], 2),
        "engine_per_event_p50_ms": round(local["engine_ms"], 2),
        "ratio_engine_to_direct": round(local["engine_ms"] / local["direct_ms"], 2),
        "added_per_node_ms": round((local["engine_ms"] - local["direct_ms"]) / nodes, 2),
        "in_process_events_per_s": round(local["events_per_s"], 1),
        "redis_2_workers_events_per_s": round(redis_rate, 1),
        "direct_events_per_s": round(1000 / local["direct_ms"], 1),
    }
    emit(
        "workflows",
        table(
            ["figure", "value"],
            [
                (
                    "direct node calls, per event p50 (baseline)",
                    f"{figures['direct_per_event_p50_ms']} ms",
                ),
                (
                    "through the engine, per event p50",
                    f"{figures['engine_per_event_p50_ms']} ms"
                    f" ({figures['ratio_engine_to_direct']}× the direct calls)",
                ),
                ("added by the engine, per node", f"{figures['added_per_node_ms']} ms"),
                (
                    f"in-process queue, {events} events at once",
                    f"{figures['in_process_events_per_s']} events/s",
                ),
                (
                    "Redis Streams, 2 `python -m agents_runtime` workers",
                    f"{figures['redis_2_workers_events_per_s']} events/s",
                ),
                (
                    "direct calls, one event at a time (baseline)",
                    f"{figures['direct_events_per_s']} events/s",
                ),
            ],  # fmt: skip
        ),
    )
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--sequential", type=int, default=100)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.events, args.sequential))))
