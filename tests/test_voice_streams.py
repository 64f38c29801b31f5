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
from xml.etree import ElementTree

import pytest
from aiohttp import FormData, WSMsgType

from agents_runtime.voice import models, speech
from fakes.voice_line import Line, silence, start_twilio_stream, synthesize, transcribe
from hub.services import SERVICES
from hub.voice import twilio
from tests.conftest import start_client
from tests.helpers import assert_error, signup, wait_for
from tests.test_knowledge import processed

POLICY = (
    "Our refund policy: customers may return any product within thirty days "
    "of delivery for a full refund.\n"
)
QUESTION = "What is your refund policy?"
TWILIO_TOKEN = "twilio-auth-token-for-tests"
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
async def hub(base_settings):
    models.load_speech()  # silero, Piper and pocketsphinx: once for the module
    client = await start_client(
        base_settings.with_overrides(
            voice_sessions_per_company=1,
            # Short, for the test that waits it out; not so short that a busy
            # machine (the line's sender and the hub share this loop) trips it.
            voice_idle_seconds=10,
            twilio_auth_token=TWILIO_TOKEN,
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
    """No LiveKit here: staff's deploy routes the number for media streams only."""
    response = await hub.post(
        "/api/voice-bot/deploy",
        json={"agent_id": agent_id, "phone_number": number},
        headers=account.headers,
    )
    assert response.status == 200, await response.text()
    deployed = await response.json()
    assert deployed["created"] == ["voice_number"] and deployed["sip_trunk_id"] is None


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


# -- Twilio ------------------------------------------------------------------------


async def twilio_webhook(hub, params: dict, *, token: str = TWILIO_TOKEN):
    url = str(hub.make_url("/voice/twilio/incoming"))
    return await hub.post(
        "/voice/twilio/incoming",
        data=params,
        headers={"X-Twilio-Signature": twilio.signature(token, url, params)},
    )


def stream_of(twiml: str) -> tuple[str, str]:
    root = ElementTree.fromstring(twiml)
    stream = root.find("./Connect/Stream")
    token = stream.find("./Parameter[@name='token']").get("value")
    return stream.get("url"), token


async def open_stream(hub, call_sid: str, token: str, stream_sid: str = "MZ1"):
    ws = await hub.ws_connect("/voice/twilio/stream")
    await start_twilio_stream(ws, call_sid, token, stream_sid)
    return ws


async def phone_conversations(hub, company_id: str, call_sid: str) -> list[dict]:
    services = hub.app[SERVICES]
    async with services.db.tenant(uuid.UUID(company_id)) as conn:
        rows = await conn.fetch(
            "SELECT id, channel, status, metadata FROM conversations"
            " WHERE metadata->>'call_sid' = $1",
            call_sid,
        )
    return [dict(r) for r in rows]


async def test_twilio_call_end_to_end(hub, tenant):
    account, agent, _, number = tenant
    call_sid = f"CA{uuid.uuid4().hex}"
    params = {"CallSid": call_sid, "To": number, "From": "+14155550199", "AccountSid": "AC1"}
    response = await twilio_webhook(hub, params)
    assert response.status == 200 and response.content_type == "text/xml"
    url, token = stream_of(await response.text())
    assert url.endswith("/voice/twilio/stream") and url.startswith("ws://")
    ws = await open_stream(hub, call_sid, token)
    line = Line(ws, 8000, stream_sid="MZ1")
    try:
        line.say(silence(0.3, 8000) + await synthesize(QUESTION, 8000))
        (conv,) = await wait_for(lambda: phone_conversations(hub, account.company_id, call_sid))
        assert conv["channel"] == "phone" and conv["metadata"]["called_number"] == number
        (reply,) = await reply_stored(hub, account, conv["id"])
        user = (await messages(hub, account, conv["id"]))[0]
        # Phone audio is recognised by Whisper (pocketsphinx's wideband model
        # mishears 8 kHz μ-law), which hears the question near enough word for
        # word (Piper's voice varies: once "reefing policy"); when it heard
        # "refund", the reply quotes the policy.
        assert user["sender_type"] == "user"
        assert len(words(user["content"]) & words(QUESTION)) >= 4, user["content"]
        assert reply["reply_to"] == user["id"] and reply["ai_metadata"]["channel"] == "phone"
        if "refund" in words(user["content"]):
            assert "thirty days" in reply["content"]
        # The reply came back as μ-law audio that says the reply's words.
        heard = transcribe(bytes(line.audio), 8000)
        assert len(words(heard) & words(reply["content"])) >= 3, (heard, reply["content"])
        # Twilio gets media, mark and clear only; every mark was echoed back.
        assert {f["event"] for f in line.frames} == {"mark"} and line.marks
        await line.send_json({"event": "stop", "streamSid": "MZ1", "stop": {"callSid": call_sid}})
        await asyncio.wait_for(line.closed.wait(), 10)
        assert line.close_code == 1000
    finally:
        await line.close()
    ended = await wait_for(lambda: _status(hub, account, conv["id"], "ended"), within=10)
    assert ended["metadata"]["call_end_reason"] == "hung_up"

    # The stream token names this call: replayed, it starts nothing more.
    ws = await open_stream(hub, call_sid, token, stream_sid="MZ2")
    error, code, _ = await refused(ws)
    assert error["code"] == "CONFLICT" and code == 4409
    assert len(await phone_conversations(hub, account.company_id, call_sid)) == 1


async def test_twilio_needs_its_auth_token(make_client, tenant):
    # Unsigned webhooks would let anyone who knows a number start calls on it.
    unconfigured = await make_client(twilio_auth_token=None)
    params = {"CallSid": f"CA{uuid.uuid4().hex}", "To": tenant[3], "From": "+14155550199"}
    response = await unconfigured.post("/voice/twilio/incoming", data=params)
    assert response.status == 503
    assert_error(await response.json(), "VOICE_NOT_CONFIGURED")


async def test_twilio_refusals(hub, tenant, base_settings):
    account, agent, _, number = tenant
    call_sid = f"CA{uuid.uuid4().hex}"
    params = {"CallSid": call_sid, "To": number, "From": "+14155550199"}
    # Not signed with the account's auth token: refused.
    response = await twilio_webhook(hub, params, token="someone-else")
    assert response.status == 403
    assert_error(await response.json(), "INVALID_SIGNATURE")
    response = await hub.post("/voice/twilio/incoming", data=params)
    assert response.status == 403
    # Signed, but holding what PostgreSQL cannot store.
    response = await twilio_webhook(hub, {**params, "From": "+1415\x00"})
    assert response.status == 400
    assert_error(await response.json(), "VALIDATION_ERROR")
    # A number nobody routed.
    response = await twilio_webhook(hub, {**params, "To": "+19995550123"})
    assert response.status == 404
    assert_error(await response.json(), "NOT_FOUND")

    # Another tenant's number reaches that tenant's agent, never this one's.
    other = await signup(hub, company="Other")
    other_agent = await (
        await hub.post("/api/agents", json={"name": "Theirs"}, headers=other.headers)
    ).json()
    other_number = f"+1415666{uuid.uuid4().int % 10_000:04d}"
    await route_number(hub, other, other_agent["id"], other_number)
    # It stays theirs: another company cannot take it over.
    taken = await hub.post(
        "/api/voice-bot/deploy",
        json={"agent_id": agent["id"], "phone_number": other_number},
        headers=account.headers,
    )
    assert taken.status == 409
    assert_error(await taken.json(), "CONFLICT")
    response = await twilio_webhook(hub, {**params, "To": other_number})
    _, other_token = stream_of(await response.text())
    grant = twilio.verify_stream_token(hub.app[SERVICES].settings, other_token)
    assert str(grant.company_id) == other.company_id and str(grant.agent_id) == other_agent["id"]

    # A stream without the webhook's token, with a forged one, or for another call.
    response = await twilio_webhook(hub, params)
    _, token = stream_of(await response.text())
    forged = twilio.mint_stream_token(
        base_settings.with_overrides(jwt_secret="x" * 48),
        twilio.StreamGrant(
            uuid.UUID(account.company_id), uuid.UUID(agent["id"]), call_sid, number, None
        ),
    )
    for sid, bad in ((call_sid, ""), (call_sid, forged), ("CAanother", token)):
        ws = await open_stream(hub, sid, bad)
        error = await ws.receive_json(timeout=10)
        assert error["type"] == "error" and error["code"] == "INVALID_TOKEN", error
        closing = await ws.receive(timeout=10)
        assert closing.data == 4401 and "INVALID_TOKEN" in closing.extra
        await ws.close()
    # A stream whose ids PostgreSQL could not store.
    ws = await open_stream(hub, call_sid, token, stream_sid="MZ\x00")
    assert (await ws.receive_json(timeout=10))["code"] == "VALIDATION_ERROR"
    assert (await ws.receive(timeout=10)).data == 4400
    await ws.close()
    # A stream that does not begin with start.
    ws = await hub.ws_connect("/voice/twilio/stream")
    await ws.send_str("not json")
    assert (await ws.receive_json(timeout=10))["code"] == "MALFORMED_FRAME"
    assert (await ws.receive(timeout=10)).data == 4400
    await ws.close()
    assert await phone_conversations(hub, account.company_id, call_sid) == []
    assert await phone_conversations(hub, other.company_id, call_sid) == []


# -- barge-in and limits ---------------------------------------------------------------


async def test_barge_in_stops_playback_and_truncates_the_reply(hub, tenant, question):
    account = tenant[0]
    started = await voice_conversation(hub, tenant)
    ws = await hub.ws_connect(f"/public/voice/ws?token={started['token']}")
    line = Line(ws, 16_000)
    try:
        line.say(silence(0.3, 16_000) + question)
        await wait_for(lambda: _after(line, 1.5), every=0.05)  # 1.5 s into the reply
        line.say(question)  # the caller speaks over the agent
        await wait_for(lambda: _cleared(line), within=20, every=0.05)
        replies = await reply_stored(hub, account, started["id"])
        first = replies[0]
        assert first["ai_metadata"]["interrupted"] is True
        full = "Here is what our knowledge base says: " + POLICY.strip()
        # What was stored is what was heard: a beginning of the answer, not all of it.
        assert 0 < len(first["content"]) < len(full)
        said = re.findall(r"[a-z]+", first["content"].lower())
        assert said == re.findall(r"[a-z]+", full.lower())[: len(said)], first["content"]
        # Playback stopped: far less audio arrived than the whole answer takes.
        heard = len(line.audio) / 2 / 16_000
        assert heard < len(full) / 15  # Piper speaks ~15 characters a second
    finally:
        await line.close()


async def _after(line: Line, seconds: float) -> bool:
    return len(line.audio) / 2 / line.sample_rate >= seconds


async def _cleared(line: Line) -> bool:
    return line.clears > 0


async def refused(ws) -> tuple[dict, int, str]:
    error = await ws.receive_json(timeout=10)
    closing = await ws.receive(timeout=10)
    await ws.close()
    return error, closing.data, closing.extra


async def test_browser_refusals_and_limits(hub, tenant):
    account = tenant[0]
    # A bad token.
    ws = await hub.ws_connect("/public/voice/ws?token=nonsense")
    error, code, reason = await refused(ws)
    assert_error({k: v for k, v in error.items() if k != "type"}, "INVALID_TOKEN")
    assert code == 4401 and "INVALID_TOKEN" in reason
    # A chat conversation is not a voice call.
    chat = await (
        await hub.post(
            "/public/conversations", json={"agent_id": tenant[1]["id"]}, headers=tenant[2]
        )
    ).json()
    ws = await hub.ws_connect(f"/public/voice/ws?token={chat['token']}")
    error, code, _ = await refused(ws)
    assert error["code"] == "CONFLICT" and code == 4409

    # One session per company here: a second one is refused while the first runs.
    first = await voice_conversation(hub, tenant)
    holder = await hub.ws_connect(f"/public/voice/ws?token={first['token']}")
    assert (await holder.receive_json(timeout=30))["type"] == "ready"
    second = await voice_conversation(hub, tenant)
    ws = await hub.ws_connect(f"/public/voice/ws?token={second['token']}")
    error, code, reason = await refused(ws)
    assert error["code"] == "VOICE_SESSIONS_LIMIT" and code == 4429
    assert (await conversation(hub, account, second["id"]))["status"] == "active"
    assert await messages(hub, account, second["id"]) == []
    # One call per conversation: a second socket on it is refused.
    ws = await hub.ws_connect(f"/public/voice/ws?token={first['token']}")
    error, code, _ = await refused(ws)
    assert error["code"] == "VOICE_SESSION_OPEN" and code == 4409
    # The first sends no audio: it is closed when the idle timeout passes.
    while True:
        msg = await holder.receive(timeout=30)
        if msg.type == WSMsgType.CLOSE:
            break
        if msg.type == WSMsgType.TEXT and msg.json()["type"] == "error":
            assert msg.json()["code"] == "IDLE_TIMEOUT"
    assert msg.data == 4408
    await holder.close()
    ended = await wait_for(lambda: _status(hub, account, first["id"], "ended"), within=10)
    assert ended["metadata"]["call_end_reason"] == "idle_timeout"

    # A malformed frame mid-call: closed with the reason, nothing half-stored.
    third = await voice_conversation(hub, tenant)
    ws = await hub.ws_connect(f"/public/voice/ws?token={third['token']}")
    assert (await ws.receive_json(timeout=30))["type"] == "ready"
    await ws.send_bytes(bytes(640))
    await ws.send_bytes(b"\x01\x02\x03")  # not whole 16-bit samples
    while (msg := await ws.receive(timeout=10)).type != WSMsgType.CLOSE:
        if msg.type == WSMsgType.TEXT and msg.json()["type"] == "error":
            assert msg.json()["code"] == "MALFORMED_FRAME"
    assert msg.data == 4400 and "16-bit" in msg.extra
    await ws.close()
    ended = await wait_for(lambda: _status(hub, account, third["id"], "ended"), within=10)
    assert ended["metadata"]["call_end_reason"] == "malformed_frame"
    assert await messages(hub, account, third["id"]) == []


async def test_a_disabled_agent_takes_no_browser_call(hub, tenant):
    account, agent = tenant[0], tenant[1]
    call = await voice_conversation(hub, tenant)

    async def enable(on: bool) -> None:
        response = await hub.patch(
            f"/api/agents/{agent['id']}", json={"enabled": on}, headers=account.headers
        )
        assert response.status == 200, await response.text()

    await enable(False)
    try:
        ws = await hub.ws_connect(f"/public/voice/ws?token={call['token']}")
        error, code, _ = await refused(ws)
        assert error["code"] == "NOT_FOUND" and error["error"] == "Agent not found"
        assert code == 4404
    finally:
        await enable(True)
    assert (await conversation(hub, account, call["id"]))["status"] == "active"


async def test_audio_faster_than_real_time_is_refused(hub, tenant):
    account = tenant[0]
    started = await voice_conversation(hub, tenant)
    ws = await hub.ws_connect(f"/public/voice/ws?token={started['token']}")
    assert (await ws.receive_json(timeout=30))["type"] == "ready"
    for _ in range(4):  # four seconds of audio at once: a flood, not speech
        await ws.send_bytes(bytes(32_000))
    while (msg := await ws.receive(timeout=10)).type != WSMsgType.CLOSE:
        if msg.type == WSMsgType.TEXT and msg.json()["type"] == "error":
            assert msg.json()["code"] == "MALFORMED_FRAME"
    assert msg.data == 4400 and "real time" in msg.extra
    await ws.close()
    ended = await wait_for(lambda: _status(hub, account, started["id"], "ended"), within=10)
    assert ended["metadata"]["call_end_reason"] == "malformed_frame"


async def test_connection_attempts_per_address(make_client):
    limited = await make_client(socket_connects_per_minute=1)
    codes = []
    for _ in range(2):
        ws = await limited.ws_connect("/public/voice/ws?token=nonsense")
        error, code, _ = await refused(ws)
        codes.append((error["code"], code))
    assert codes == [("INVALID_TOKEN", 4401), ("RATE_LIMITED", 4429)]


async def test_a_session_that_cannot_start_closes_with_1011(hub, tenant, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no speech model")

    monkeypatch.setattr(speech, "build_stt", broken)
    started = await voice_conversation(hub, tenant)
    ws = await hub.ws_connect(f"/public/voice/ws?token={started['token']}")
    error, code, _ = await refused(ws)
    assert error["code"] == "INTERNAL_ERROR" and code == 1011
    assert await messages(hub, tenant[0], started["id"]) == []
    monkeypatch.undo()
    # Its slot was given back: the conversation can still be called.
    ws = await hub.ws_connect(f"/public/voice/ws?token={started['token']}")
    assert (await ws.receive_json(timeout=30))["type"] == "ready"
    await ws.close()


async def test_the_key_decides_as_for_the_chat_widget(hub, tenant):
    account, agent, _, _ = tenant
    key = await (
        await hub.post(
            f"/api/agents/{agent['id']}/keys",
            json={"allowed_origins": ["https://shop.example.com"]},
            headers=account.headers,
        )
    ).json()
    started = await (
        await hub.post(
            "/public/conversations",
            json={"agent_id": agent["id"], "channel": "voice"},
            headers={"Authorization": f"Bearer {key['key']}"},
        )
    ).json()
    url = f"/public/voice/ws?token={started['token']}"
    # From a site the key does not allow.
    ws = await hub.ws_connect(url, headers={"Origin": "https://elsewhere.example.com"})
    error, code, _ = await refused(ws)
    assert error["code"] == "ORIGIN_NOT_ALLOWED" and code == 4403
    # Revoking the key cuts the call it carries, and its tokens open no more.
    ws = await hub.ws_connect(url, headers={"Origin": "https://shop.example.com"})
    assert (await ws.receive_json(timeout=30))["type"] == "ready"
    revoked = await hub.delete(
        f"/api/agents/{agent['id']}/keys/{key['id']}", headers=account.headers
    )
    assert revoked.status in (200, 204)
    while (msg := await ws.receive(timeout=10)).type != WSMsgType.CLOSE:
        if msg.type == WSMsgType.TEXT and msg.json()["type"] == "error":
            assert msg.json()["code"] == "INVALID_KEY"
    assert msg.data == 4401
    await ws.close()
    ws = await hub.ws_connect(url)
    error, code, _ = await refused(ws)
    assert error["code"] == "INVALID_KEY" and code == 4401


# -- the widget's mic button in a real browser ----------------------------------------


async def test_widget_mic_button_calls_over_the_websocket(hub, tenant):
    """Chromium with a fake microphone: the mic button starts a voice call over
    /public/voice/ws (no LiveKit here), streams well-formed PCM, and hangs up."""
    import shutil

    from playwright.async_api import async_playwright, expect

    from tests.conftest import CHROMIUM_FLAGS

    account, agent, key_headers, _ = tenant
    key = key_headers["Authorization"].removeprefix("Bearer ")
    base = str(hub.make_url("")).rstrip("/")
    flags = [
        *CHROMIUM_FLAGS,
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
    ]
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=shutil.which("chromium") or shutil.which("chromium-browser"),
            args=flags,
        )
        page = await browser.new_page()
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.goto(base + "/healthz")  # the hub's origin, so the page may call it
        await page.set_content(
            f'<html><body><script src="{base}/widget.js" data-agent-id="{agent["id"]}"'
            f' data-key="{key}"></script></body></html>'
        )
        await page.get_by_role("button", name="Open chat").click()
        await page.get_by_role("button", name="Voice call").click()
        notice = page.get_by_role("status")
        await expect(notice).to_have_text("Voice call: speak now.", timeout=30_000)
        await page.wait_for_timeout(1500)  # the fake microphone's audio streams in
        calls = await _voice_calls(hub, account.company_id)
        assert calls and calls[0]["status"] == "active"
        await page.get_by_role("button", name="Voice call").click()  # hang up
        await expect(notice).to_have_text("The voice call has ended.", timeout=15_000)
        await browser.close()
    assert errors == []
    ended = await wait_for(lambda: _status(hub, account, calls[0]["id"], "ended"), within=10)
    # Closed by the caller, not for a malformed frame: the page's PCM was well formed.
    assert ended["metadata"]["call_end_reason"] == "hung_up"


async def _voice_calls(hub, company_id: str) -> list[dict]:
    services = hub.app[SERVICES]
    async with services.db.tenant(uuid.UUID(company_id)) as conn:
        rows = await conn.fetch(
            "SELECT id, status FROM conversations WHERE channel = 'voice'"
            " AND metadata ? 'page' ORDER BY started_at DESC"
        )
    return [{"id": str(r["id"]), "status": r["status"]} for r in rows]
