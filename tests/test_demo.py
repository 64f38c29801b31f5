"""The demo a newcomer lands on."""

from __future__ import annotations

import json
from uuid import UUID

from agents_runtime.llm import NOTHING_FOUND
from hub.demo import DEMO, DEMO_EMAIL, KNOWLEDGE, local_origins
from hub.services import SERVICES
from tests.helpers import SocketClient, wait_for


async def test_demo_is_made_once_and_works(make_client, tmp_path):
    tmp_path.chmod(0o755)
    hub = await make_client(demo=True, data_dir=tmp_path, port=8123)
    demo = hub.app[DEMO]
    stored = json.loads((tmp_path / "demo.json").read_text())
    assert stored["key"] == demo.key and (tmp_path / "demo.json").stat().st_mode & 0o777 == 0o600

    # The key answers for the local origin the page is served from.
    headers = {"Authorization": f"Bearer {demo.key}", "Origin": "http://127.0.0.1:8123"}
    profile = await (await hub.get(f"/public/agents/{demo.agent_id}", headers=headers)).json()
    assert profile["name"] == "Syntera Guide" and profile["greeting"]

    # The demo owner can log in with the password kept in the data dir.
    login = await hub.post("/api/auth/login", json={"email": DEMO_EMAIL, "password": demo.password})
    assert login.status == 200

    # A restart on the same data dir reuses the demo; a demo made by an earlier
    # release (other knowledge) learns this release's text and processes it again.
    async with hub.app[SERVICES].db.tenant(UUID(demo.company_id)) as conn:
        await conn.execute("UPDATE documents SET file = 'Older words.', status = 'processed'")
    again = await make_client(demo=True, data_dir=tmp_path, port=8123)
    assert again.app[DEMO].agent_id == demo.agent_id

    async def relearned():
        async with again.app[SERVICES].db.tenant(UUID(demo.company_id)) as conn:
            [document] = await conn.fetch("SELECT file, status FROM documents")
            headings = await conn.fetch("SELECT heading FROM chunks")
        assert bytes(document["file"]) == KNOWLEDGE.encode()
        return document["status"] == "processed" and "How do I deploy and run it?" in {
            h["heading"] for h in headings
        }

    await wait_for(relearned)

    # Restarted on another port, the page's new origin is allowed (and the old one no longer).
    moved = await make_client(demo=True, data_dir=tmp_path, port=8124)
    assert moved.app[DEMO].key == demo.key
    for port, status in ((8124, 200), (8123, 403)):
        headers = {"Authorization": f"Bearer {demo.key}", "Origin": f"http://127.0.0.1:{port}"}
        response = await moved.get(f"/public/agents/{demo.agent_id}", headers=headers)
        assert response.status == status, port


async def test_demo_off_by_default_with_a_database_url(client):
    assert client.app.get(DEMO) is None
    page = await client.get("/")
    assert page.status == 200


def test_local_origins():
    assert local_origins("127.0.0.1", 8080) == ["http://127.0.0.1:8080", "http://localhost:8080"]
    assert local_origins("hub.example.com", 80) == ["http://hub.example.com:80"]


async def test_the_demo_answers_what_its_greeting_invites(make_client, tmp_path):
    """Through the widget's path (a publishable key, a conversation, the
    /widget socket) with no model key: the offline responder answers from
    what retrieval found, so the reply quotes the passage only if the demo's
    knowledge covers the question and the turn's threshold lets it through."""
    tmp_path.chmod(0o755)
    hub = await make_client(demo=True, data_dir=tmp_path, port=8125)
    demo = hub.app[DEMO]
    login = await hub.post("/api/auth/login", json={"email": DEMO_EMAIL, "password": demo.password})
    owner = {"Authorization": f"Bearer {(await login.json())['access_token']}"}

    async def processed():
        listed = await (await hub.get("/api/knowledge-base", headers=owner)).json()
        return all(d["status"] == "processed" for d in listed["documents"]) and listed["documents"]

    await wait_for(processed)

    origin = "http://127.0.0.1:8125"
    public = {"Authorization": f"Bearer {demo.key}", "Origin": origin}
    profile = await (await hub.get(f"/public/agents/{demo.agent_id}", headers=public)).json()
    assert "how to deploy it" in profile["greeting"] and "what it does" in profile["greeting"]
    started = await (
        await hub.post("/public/conversations", json={"agent_id": demo.agent_id}, headers=public)
    ).json()
    visitor = SocketClient("/widget", origin=origin)
    try:
        await visitor.connect(hub, started["token"])
        for n, (question, quoted) in enumerate(
            [
                (
                    "How do I deploy it?",
                    "deploy it on your own server or laptop with one command",
                ),
                ("What does it do?", "multi-tenant conversational-AI backend"),
            ]
        ):
            ack = await visitor.call("message:send", {"content": question, "client_id": f"q{n}"})
            assert ack["ok"] is True, ack
            reply = await visitor.wait_for(
                "message:done", lambda d, seq=ack["message"]["seq"]: d["seq"] > seq, within=60
            )
            assert reply["sender_type"] == "agent"
            assert quoted in reply["content"].replace("\n", " "), (question, reply["content"])
            assert NOTHING_FOUND not in reply["content"]
    finally:
        await visitor.close()
