"""What the workflow tests share: building graphs, saving them, waiting for runs."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from hub.services import SERVICES

TRIGGER = {"id": "trigger", "type": "trigger", "data": {}}


def chain(*nodes: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    """The trigger followed by `nodes` one after another."""
    ordered = [TRIGGER, *nodes]
    edges = [
        {"id": f"e{i}", "source": a["id"], "target": b["id"]}
        for i, (a, b) in enumerate(zip(ordered, ordered[1:], strict=False))
    ]
    return ordered, edges


def node(node_id: str, node_type: str, **data: Any) -> dict[str, Any]:
    return {"id": node_id, "type": node_type, "data": data}


async def save(client, account, trigger_type: str, *nodes, config=None, **fields) -> dict:
    graph_nodes, edges = chain(*nodes)
    body = {
        "name": fields.pop("name", f"wf {uuid.uuid4().hex[:6]}"),
        "trigger_type": trigger_type,
        "trigger_config": config or {},
        "nodes": fields.pop("nodes", graph_nodes),
        "edges": fields.pop("edges", edges),
        **fields,
    }
    response = await client.post("/api/workflows", json=body, headers=account.headers)
    assert response.status == 201, await response.text()
    return await response.json()


async def executions(client, account, workflow_id: str) -> list[dict]:
    response = await client.get(
        f"/api/workflows/{workflow_id}/executions?limit=100", headers=account.headers
    )
    assert response.status == 200, await response.text()
    return (await response.json())["executions"]


async def eventually(check: Callable[[], Awaitable[Any]], seconds: float = 10.0) -> Any:
    """Poll `check` until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {seconds} s: {result!r}")
        await asyncio.sleep(0.05)


async def finished(client, account, workflow_id: str, count: int = 1) -> list[dict]:
    """Wait until the workflow has `count` finished executions; newest first."""

    async def done():
        runs = await executions(client, account, workflow_id)
        ended = [r for r in runs if r["status"] != "running" or r["resume_at"]]
        return runs if len(ended) >= count else None

    return await eventually(done)


async def settle(client) -> None:
    """Wait until the hub's in-process queue has nothing left to do."""
    await client.app[SERVICES].jobs.join()


def steps(execution: dict) -> dict[str, dict]:
    return {entry["node_id"]: entry for entry in execution["trace"]}
