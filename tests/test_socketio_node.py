"""The official JavaScript client (socket.io-client from npm, run with Node)
completes a turn on /widget: the protocol as browsers speak it."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from fakes.openai import Reply
from tests.helpers import signup

NODE_DIR = Path(__file__).resolve().parent / "node"
ORIGIN = "https://shop.example.com"


@pytest.fixture(scope="module")
def node_client() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "Node.js is missing: scripts/test installs the OS packages nodejs and npm"
    if not (NODE_DIR / "node_modules" / "socket.io-client").exists():
        import subprocess

        subprocess.run(
            [npm, "ci", "--silent", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            check=True,
            timeout=300,
        )
    return NODE_DIR / "widget_turn.mjs"


async def run_node(script: Path, *args: str) -> dict:
    process = await asyncio.create_subprocess_exec(
        shutil.which("node"),
        str(script),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return json.loads(out.decode().strip().splitlines()[-1])


async def test_official_js_client_completes_a_turn(make_client, fake, node_client):
    hub = await make_client(openai_api_key="sk-test", openai_base_url=fake.base_url)
    account = await signup(hub)
    agent = await (
        await hub.post("/api/agents", json={"name": "Node"}, headers=account.headers)
    ).json()
    key = await (
        await hub.post(
            f"/api/agents/{agent['id']}/keys",
            json={"allowed_origins": [ORIGIN]},
            headers=account.headers,
        )
    ).json()
    started = await (
        await hub.post(
            "/public/conversations",
            json={"agent_id": agent["id"]},
            headers={"Authorization": f"Bearer {key['key']}"},
        )
    ).json()
    fake.then(Reply(text="Hello Node, this reply arrives in several deltas.", chunk_delay=0.02))
    base = str(hub.make_url("")).rstrip("/")

    result = await run_node(node_client, base, started["token"], ORIGIN)
    assert result["ack"]["ok"] is True and result["ack"]["message"]["content"] == "Hello from Node"
    assert result["done"]["content"] == "Hello Node, this reply arrives in several deltas."
    assert "".join(d["delta"] for d in result["deltas"]) == result["done"]["content"]
    assert [d["index"] for d in result["deltas"]] == list(range(len(result["deltas"])))

    refused = await run_node(node_client, base, "not-a-token", ORIGIN)
    assert refused["data"]["code"] == "INVALID_TOKEN"
