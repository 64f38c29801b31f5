"""The voice agent in livekit-agents' own text harness (AgentSession +
session.run + RunResult.expect, no server), thinking through the real
`openai` client against fakes/openai.py: it answers from the knowledge
base, calls the chat's tools, and every utterance lands in the conversation."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiohttp import FormData

from agents_runtime.llm import HANDED_OFF, OfflineResponder, OpenAIChat
from agents_runtime.voice.call import VoiceCall
from fakes.openai import Reply
from hub.conversations import set_takeover, start_conversation
from hub.services import SERVICES
from hub.store import agents
from tests.helpers import signup
from tests.test_knowledge import processed

POLICY = (
    "Refund policy. Customers may return any product within thirty days of delivery. "
    "The money is paid back to the original card within five working days.\n\n"
    "Shipping. Orders above fifty euros ship for free anywhere in the European Union.\n"
)


@pytest.fixture
async def hub(fake, make_client):  # fake first: it must outlive the hub
    return await make_client(openai_api_key="sk-test", openai_base_url=fake.base_url)


async def voice_setup(hub, tools=("capture_contact", "end_conversation", "handoff_to_human")):
    account = await signup(hub)
    agent = await (
        await hub.post(
            "/api/agents",
            json={
                "name": "Phone agent",
                "model": "gpt-test-model",
                "temperature": 0,
                "max_tokens": 200,
                "system_prompt": "You are Acme's phone assistant.",
                "tools": list(tools),
            },
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
    services = hub.app[SERVICES]
    company_id = uuid.UUID(account.company_id)
    async with services.db.tenant(company_id) as conn:
        row = await agents.get(conn, uuid.UUID(agent["id"]))
        conversation = await start_conversation(
            services.db, conn, company_id=company_id, agent_id=row["id"], channel="voice"
        )
    return account, row, conversation, services


async def transcript(hub, account, conversation_id):
    await asyncio.sleep(0.05)
    response = await hub.get(
        f"/api/conversations/{conversation_id}/messages?limit=200", headers=account.headers
    )
    return (await response.json())["messages"]


async def settled(call: VoiceCall) -> None:
    """Let the stores triggered by the session's events finish."""
    for _ in range(50):
        await asyncio.sleep(0.02)
        if not call._tasks:
            return


async def test_the_voice_agent_answers_from_the_knowledge_base(hub, fake):
    account, agent, conversation, services = await voice_setup(hub)
    call = VoiceCall(services, OpenAIChat("sk-test", fake.base_url), agent, conversation)
    await call.start()
    fake.then(
        Reply(
            text="You can return anything within thirty days [1], refunded in five working days [1]."
        )
    )
    result = await call.session.run(user_input="What is your refund policy?")
    result.expect.next_event().is_message(role="assistant")
    result.expect.no_more_events()
    await settled(call)

    # The model saw the voice instructions and this turn's passages.
    sent = fake.requests[-1]
    assert sent["model"] == "gpt-test-model" and sent["max_tokens"] == 200
    system = "\n".join(m["content"] for m in sent["messages"] if m["role"] == "system")
    assert "You are Acme's phone assistant." in system and "voice call" in system
    assert "within thirty days of delivery" in system  # the retrieved passage
    assert {t["function"]["name"] for t in sent["tools"]} == {
        "capture_contact",
        "end_conversation",
        "handoff_to_human",
    }

    user, reply = await transcript(hub, account, conversation["id"])
    assert (user["sender_type"], user["content"]) == ("user", "What is your refund policy?")
    assert reply["sender_type"] == "agent" and reply["reply_to"] == user["id"]
    # Citation markers are not spoken, so not stored; the sources are in the metadata.
    assert reply["content"] == (
        "You can return anything within thirty days, refunded in five working days."
    )
    meta = reply["ai_metadata"]
    assert meta["sources"] and meta["sources"][0]["source"] == "policy.txt"
    assert meta["channel"] == "voice" and meta["interrupted"] is False
    assert meta["model"] == "gpt-test-model" and meta["prompt_tokens"] == 50
    assert set(meta["latency"]) == {
        "transcript_ms",
        "end_of_turn_ms",
        "first_token_ms",
        "first_audio_ms",
        "total_ms",
    }
    assert meta["latency"]["first_token_ms"] is not None

    # Analytics show the voice turns and their latency.
    analytics = await (await hub.get("/api/analytics/voice", headers=account.headers)).json()
    assert analytics["turns"] == 1 and analytics["interrupted"] == 0
    first_token = analytics["latency"]["firstToken"]
    assert first_token["p50"] == first_token["avg"] == meta["latency"]["first_token_ms"]
    assert analytics["latency"]["firstAudio"] == {"avg": None, "p50": None, "p95": None}
    await call.session.aclose()
    await asyncio.wait_for(call.wait_ended(), 5)


async def test_the_voice_agent_calls_the_chat_tools(hub, fake):
    account, agent, conversation, services = await voice_setup(hub)
    call = VoiceCall(services, OpenAIChat("sk-test", fake.base_url), agent, conversation)
    await call.start()
    fake.then(
        Reply(
            tool_calls=[
                {
                    "name": "capture_contact",
                    "arguments": {"email": "jane@example.com", "first_name": "Jane"},
                }
            ]
        ),
        Reply(text="Thanks Jane, I have noted your email."),
    )
    result = await call.session.run(user_input="Please note my email, jane@example.com. I'm Jane.")
    result.expect.next_event().is_function_call(
        name="capture_contact", arguments={"email": "jane@example.com", "first_name": "Jane"}
    )
    result.expect.next_event().is_function_call_output()
    result.expect.next_event().is_message(role="assistant")
    result.expect.no_more_events()
    await settled(call)

    contacts = await (await hub.get("/api/crm/contacts", headers=account.headers)).json()
    (contact,) = contacts["contacts"]
    assert contact["email"] == "jane@example.com" and contact["first_name"] == "Jane"
    messages = await transcript(hub, account, conversation["id"])
    assert [m["sender_type"] for m in messages] == ["user", "system", "agent"]
    assert messages[1]["metadata"]["tool"] == "capture_contact"
    assert messages[2]["ai_metadata"]["tools"] == ["capture_contact"]
    conv = await (
        await hub.get(f"/api/conversations/{conversation['id']}", headers=account.headers)
    ).json()
    assert conv["contact_id"] == contact["id"]

    # Saying goodbye ends the conversation and the call, with its duration.
    fake.then(
        Reply(tool_calls=[{"name": "end_conversation", "arguments": {"reason": "goodbye"}}]),
        Reply(text="Goodbye!"),
    )
    await call.session.run(user_input="That's all, bye.")
    await asyncio.wait_for(call.wait_ended(), 10)
    conv = await (
        await hub.get(f"/api/conversations/{conversation['id']}", headers=account.headers)
    ).json()
    assert conv["status"] == "ended" and conv["ended_at"] is not None
    assert conv["metadata"]["call_duration_seconds"] >= 0


async def test_offline_the_voice_agent_quotes_the_knowledge_base(hub):
    account, agent, conversation, services = await voice_setup(hub, tools=())
    call = VoiceCall(services, OfflineResponder(), agent, conversation)
    await call.start()
    result = await call.session.run(user_input="How do I get my money back?")
    result.expect.next_event().is_message(role="assistant")
    await settled(call)
    user, reply = await transcript(hub, account, conversation["id"])
    assert "original card" in reply["content"] and "[1]" not in reply["content"]
    assert reply["ai_metadata"]["model"] == "offline-responder"
    assert (reply["ai_metadata"]["tokens_used"], reply["ai_metadata"]["cost"]) == (0, 0)
    await call.session.aclose()
    await asyncio.wait_for(call.wait_ended(), 5)
    conv = await (
        await hub.get(f"/api/conversations/{conversation['id']}", headers=account.headers)
    ).json()
    assert conv["status"] == "ended"


async def test_offline_the_voice_agent_hands_a_caller_who_asks_for_a_person_over(hub):
    account, agent, conversation, services = await voice_setup(hub, tools=("handoff_to_human",))
    call = VoiceCall(services, OfflineResponder(), agent, conversation)
    await call.start()
    result = await call.session.run(user_input="I want to talk to a human please")
    result.expect.next_event().is_function_call(name="handoff_to_human")
    result.expect.next_event().is_function_call_output()
    result.expect.next_event().is_message(role="assistant")
    await settled(call)
    messages = await transcript(hub, account, conversation["id"])
    assert [m["sender_type"] for m in messages] == ["user", "system", "agent"]
    assert messages[1]["metadata"]["tool"] == "handoff_to_human"
    assert messages[2]["content"] == HANDED_OFF
    assert messages[2]["ai_metadata"]["model"] == "offline-responder"
    conv = await (
        await hub.get(f"/api/conversations/{conversation['id']}", headers=account.headers)
    ).json()
    assert conv["ai_paused"] is True
    await call.session.aclose()
    await asyncio.wait_for(call.wait_ended(), 5)


async def test_a_person_taking_over_silences_the_voice_agent(hub, fake):
    account, agent, conversation, services = await voice_setup(hub)
    call = VoiceCall(services, OpenAIChat("sk-test", fake.base_url), agent, conversation)
    await call.start()
    async with services.db.tenant(agent["company_id"]) as conn:  # the dashboard's takeover
        await set_takeover(
            services.db,
            conn,
            company_id=agent["company_id"],
            conversation_id=conversation["id"],
            user_id=uuid.UUID(account.user_id),
            taken=True,
        )
    await asyncio.sleep(0.1)  # the takeover event reaches the call
    before = len(fake.requests)
    await call.session.run(user_input="Hello? Is anyone there?")
    await settled(call)
    assert len(fake.requests) == before  # the model was not asked
    messages = await transcript(hub, account, conversation["id"])
    assert [m["sender_type"] for m in messages] == ["user"]  # heard, and kept for the person
    await call.session.aclose()
