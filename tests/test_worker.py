"""`python -m agents_runtime` as operators run it: it answers turns from the
Redis Streams queue, and SIGTERM lets a turn in flight finish first."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from pathlib import Path

import redis.asyncio as aioredis

from agents_runtime import runtime
from fakes.openai import Reply
from hub.conversations import post_user_message
from hub.services import close_services, open_services
from hub.store import companies, conversations

ROOT = Path(__file__).resolve().parent.parent


async def test_sigterm_finishes_the_turn_in_flight(fake, base_settings, redis_url):
    prefix = f"worker-{uuid.uuid4().hex[:8]}"
    settings = base_settings.with_overrides(redis_url=redis_url, redis_prefix=prefix)
    # Enqueues only, as `web` does when scaled out
    web = await open_services(settings, runtime.parts)
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": prefix,
        "JWT_SECRET": settings.ensure_jwt_secret().jwt_secret,
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": fake.base_url,
        "SYNTERA_DATA_DIR": str(settings.data_dir),
    }
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agents_runtime",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with web.db.system() as conn:
            company_id = (await companies.create(conn, "Worker Co"))["id"]
        async with web.db.tenant(company_id) as conn:
            agent_id = await conn.fetchval(
                "INSERT INTO agents (company_id, name, model, temperature, max_tokens)"
                " VALUES ($1, 'W', 'gpt-test', 0, 50) RETURNING id",
                company_id,
            )
            conversation = await conversations.create(
                conn, company_id=company_id, agent_id=agent_id
            )
        # A slow reply: the worker is mid-turn when it is told to stop.
        fake.then(Reply(text="one two three four five six seven eight", chunk_delay=0.15))
        async with web.db.tenant(company_id) as conn:
            await post_user_message(
                web,
                conn,
                company_id=company_id,
                conversation_id=conversation["id"],
                content="Hello?",
            )
        for _ in range(300):
            if fake.requests:
                break
            await asyncio.sleep(0.05)
        assert fake.requests, "the worker never took the turn"
        worker.send_signal(signal.SIGTERM)
        await asyncio.wait_for(worker.wait(), 60)
        assert worker.returncode == 0, (await worker.stderr.read()).decode()[-2000:]
        async with web.db.tenant(company_id) as conn:
            replies = await conn.fetch(
                "SELECT content FROM messages WHERE conversation_id = $1 AND sender_type = 'agent'",
                conversation["id"],
            )
        assert [r["content"] for r in replies] == ["one two three four five six seven eight"]
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
        await close_services(web)
        client = aioredis.from_url(redis_url)
        await client.delete(*[key async for key in client.scan_iter(f"*{prefix}*")] or ["-"])
        await client.aclose()
