"""The voice session caps (hub.voice.slots): per process, and per company
across processes through real Redis (or in the process without it)."""

from __future__ import annotations

import time
import uuid

import pytest
import redis.asyncio as aioredis

from hub.config import ConfigError, Settings
from hub.voice import slots
from hub.voice.slots import VoiceSlots


@pytest.fixture
async def redis_client(redis_url):
    client = aioredis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.mark.parametrize("shared", [True, False])
async def test_per_company_cap_across_processes(shared, redis_client):
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    redis = redis_client if shared else None
    one, two = (VoiceSlots(2, 10, redis, prefix) for _ in range(2))
    company, other = uuid.uuid4(), uuid.uuid4()
    async with one.hold(company, "a") as first, two.hold(company, "b") as second:
        assert first is None and second is None
        async with one.hold(company, "c") as third:
            # With Redis the two "processes" share the company's count.
            if shared:
                assert third is not None and third.code == "VOICE_SESSIONS_LIMIT"
            else:
                assert third is None
        async with two.hold(other, "a") as elsewhere:
            assert elsewhere is None  # another company has its own slots
    async with one.hold(company, "a") as again, one.hold(company, "b") as and_again:
        assert again is None and and_again is None  # released on the way out
    assert one.running == 0 and two.running == 0


async def test_per_process_cap():
    process = VoiceSlots(per_company=10, per_process=1)
    async with process.hold(uuid.uuid4(), "a") as first, process.hold(uuid.uuid4(), "b") as second:
        assert first is None and second is not None and second.code == "VOICE_BUSY"
    assert process.running == 0


@pytest.mark.parametrize("shared", [True, False])
async def test_one_session_per_conversation(shared, redis_client):
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    redis = redis_client if shared else None
    one, two = (VoiceSlots(5, 10, redis, prefix) for _ in range(2))
    company = uuid.uuid4()
    async with one.hold(company, "conversation-1") as first:
        assert first is None
        async with one.hold(company, "conversation-1") as again:
            assert (again.status, again.code) == (409, "VOICE_SESSION_OPEN")
        if shared:  # another process sees it too
            async with two.hold(company, "conversation-1") as elsewhere:
                assert elsewhere is not None and elsewhere.code == "VOICE_SESSION_OPEN"
        assert one.running == 1
    async with one.hold(company, "conversation-1") as after:
        assert after is None  # the call ended: it may be called again


async def test_a_dead_process_lease_expires(redis_client):
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    company = uuid.uuid4()
    key = f"{prefix}:voice-sessions:{company}"
    # A session of a process that died: its lease ran out and was never renewed.
    await redis_client.zadd(key, {"dead": time.time() - 1})
    await redis_client.zadd(key, {"alive": time.time() + slots.LEASE_SECONDS})
    cap = VoiceSlots(2, 10, redis_client, prefix)
    async with cap.hold(company, "new") as refusal:
        assert refusal is None  # the dead lease no longer counts
        members = await redis_client.zrange(key, 0, -1)
        assert len(members) == 2 and b"alive" in members and b"dead" not in members
    assert await redis_client.zrange(key, 0, -1) == [b"alive"]


def test_voice_settings_from_the_environment():
    defaults = Settings.from_env({})
    assert (defaults.voice_sessions_per_company, defaults.voice_sessions_per_process) == (10, 2)
    assert defaults.voice_idle_seconds == 30 and defaults.twilio_auth_token is None
    custom = Settings.from_env(
        {
            "VOICE_SESSIONS_PER_COMPANY": "3",
            "VOICE_SESSIONS_PER_PROCESS": "20",
            "VOICE_IDLE_SECONDS": "12",
            "TWILIO_AUTH_TOKEN": "secret",
            "PUBLIC_URL": "https://hub.example.com",
        }
    )
    assert (custom.voice_sessions_per_company, custom.voice_sessions_per_process) == (3, 20)
    assert custom.voice_idle_seconds == 12 and custom.twilio_auth_token == "secret"
    assert custom.public_url == "https://hub.example.com" and "secret" not in repr(custom)
    for env in ({"VOICE_IDLE_SECONDS": "0"}, {"PUBLIC_URL": "ftp://x"}):
        with pytest.raises(ConfigError):
            Settings.from_env(env)
