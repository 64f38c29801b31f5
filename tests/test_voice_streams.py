"""Voice without LiveKit, end to end with real speech: Piper says "what is
your refund policy", the test streams it in real time over a real WebSocket
(the browser transport, PCM 16 kHz, or a Twilio media stream, μ-law 8 kHz),
the hub's voice agent hears it (silero VAD, pocketsphinx), answers from the
knowledge base (offline responder) and speaks (Piper); the test hears the
reply back with pocketsphinx. One hub and one set of models for the module."""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest
from aiohttp import FormData

from agents_runtime.voice import models
from hub.services import SERVICES
from hub.store import voice_numbers
from tests.conftest import start_client
from tests.helpers import signup
from tests.test_knowledge import processed
from tests.voice_line import Line, silence, synthesize, transcribe

POLICY = (
    "Our refund policy: customers may return any product within thirty days "
    "of delivery for a full refund.\n"
)
QUESTION = "What is your refund policy?"
TWILIO_TOKEN = "twilio-auth-token-for-tests"
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
async def hub(base_settings):
    models.prewarm()  # silero, Piper and pocketsphinx: once for the module
    client = await start_client(
        base_settings.with_overrides(
            voice_sessions_per_company=1, voice_idle_seconds=5, twilio_auth_token=TWILIO_TOKEN
        )
    )
    yield client
    await client.close()


@pytest.fixture(scope="module")
async def question():
    return await synthesize(QUESTION, 16_000)


@pytest.fixture(scope="module")
async def tenant(hub):
    """A company with a voice agent that knows the refund policy, a
    publishable key, and a phone number."""
    account = await signup(hub)
    agent = await (
        await hub.post(
            "/api/agents",
            json={"name": "Voice agent", "system_prompt": "You are Acme's assistant."},
            headers=account.headers,
        )
    ).json()
    form = FormData()
    form.add_field("file", POLICY.encode(), filename="policy.txt")
    form.add_field("agent_id", agent["id"])
    uploaded = await (
        await hub.post("/api/knowledge-base/upload", data=form, headers=account.headers)
    ).json()
    assert (await processed(hub, account, uploaded["id"]))["status"] == "processed"
    key = await (
        await hub.post(
            f"/api/agents/{agent['id']}/keys",
            json={"allowed_origins": ["*"]},
            headers=account.headers,
        )
    ).json()
    number = f"+1415555{uuid.uuid4().int % 10_000:04d}"
    await route_number(hub, account, agent["id"], number)
    return account, agent, {"Authorization": f"Bearer {key['key']}"}, number


async def route_number(hub, account, agent_id, number):
    services = hub.app[SERVICES]
    company = uuid.UUID(account.company_id)
    async with services.db.tenant(company) as conn:
        assert await voice_numbers.claim(conn, company, uuid.UUID(agent_id), number) is not None


async def voice_conversation(hub, tenant) -> dict:
    account, agent, key_headers, _ = tenant
    response = await hub.post(
        "/public/conversations",
        json={"agent_id": agent["id"], "channel": "voice"},
        headers=key_headers,
    )
    assert response.status == 201, await response.text()
    return await response.json()


async def messages(hub, account, conversation_id) -> list[dict]:
    response = await hub.get(
        f"/api/conversations/{conversation_id}/messages?limit=200", headers=account.headers
    )
    return (await response.json())["messages"]


async def conversation(hub, account, conversation_id) -> dict:
    return await (
        await hub.get(f"/api/conversations/{conversation_id}", headers=account.headers)
    ).json()


async def wait_for(predicate, within: float = 45.0, every: float = 0.2):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await predicate()
        if value:
            return value
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(every)


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


async def reply_stored(hub, account, conversation_id):
    async def agent_message():
        found = [
            m for m in await messages(hub, account, conversation_id) if m["sender_type"] == "agent"
        ]
        return found or None

    return await wait_for(agent_message)


async def test_browser_voice_turn_end_to_end(hub, tenant, question):
    account = tenant[0]
    started = await voice_conversation(hub, tenant)
    ws = await hub.ws_connect(f"/public/voice/ws?token={started['token']}")
    line = Line(ws, 16_000)
    try:
        line.say(silence(0.3, 16_000) + question)
        (reply,) = await reply_stored(hub, account, started["id"])
        stored = await messages(hub, account, started["id"])
        user = stored[0]
        assert user["sender_type"] == "user" and "refund policy" in user["content"]
        # Grounded: the reply quotes the policy, with its source.
        assert "thirty days" in reply["content"] and reply["reply_to"] == user["id"]
        meta = reply["ai_metadata"]
        assert meta["sources"][0]["source"] == "policy.txt" and meta["interrupted"] is False
        assert meta["channel"] == "voice" and meta["latency"]["total_ms"] is not None
        # The reply came back as audio, and it says the reply's words.
        heard = transcribe(bytes(line.audio), 16_000)
        assert len(words(heard) & words(reply["content"]) & words(POLICY)) >= 3, heard
        assert line.marks and line.clears == 0  # each utterance ended with a mark, echoed
        transcripts = line.of_type("transcript")
        assert {"user", "agent"} <= {t["role"] for t in transcripts}
        assert {"thinking", "speaking"} <= {s["state"] for s in line.of_type("state")}
        await line.send_json({"type": "stop"})
        await asyncio.wait_for(line.closed.wait(), 10)
        assert line.close_code == 1000
    finally:
        await line.close()
    ended = await wait_for(lambda: _status(hub, account, started["id"], "ended"), within=10)
    assert ended["metadata"]["call_end_reason"] == "hung_up"


async def _status(hub, account, conversation_id, status):
    found = await conversation(hub, account, conversation_id)
    return found if found["status"] == status else None
