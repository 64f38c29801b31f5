"""The demo a newcomer lands on: on first start `serve` creates a demo company,
an agent that knows about Syntera itself, and a publishable key for the local
origin, so that `/` shows a working, grounded chat. Each start points the
key at the origin it serves from, so a restart on another port still works.

What was made is kept in `<data dir>/demo.json` (the key is only ever shown
once by the API, so this file is where the page gets it).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path
from uuid import UUID

from aiohttp import web

from hub.auth import hash_password
from hub.services import Services
from hub.store import agents, companies, keys, knowledge, users
from hub.visitors import key_hash, new_key

log = logging.getLogger(__name__)

DEMO_EMAIL = "demo@example.com"
SYSTEM_PROMPT = (
    "You are the Syntera guide. You answer questions about Syntera hub, the open-source "
    "conversational-AI backend this page runs on, from its knowledge base. Be brief."
)
GREETING = "Hi! I answer questions about Syntera hub. Ask me how to deploy it, or what it does."

# Written as a visitor asks (the greeting invites "how do I deploy it?" and "what
# does it do?"): each section's heading is a question, and chunks are embedded
# with their heading, so the visitor's words find the section that answers them.
KNOWLEDGE_FILE = "syntera.md"
KNOWLEDGE = """# Syntera hub

## What does Syntera hub do?

Syntera hub is an open-source, self-hostable, multi-tenant conversational-AI backend: it
does customer conversations for companies. A company defines AI agents, gives them a
knowledge base, and puts them in front of its customers in a chat widget on its website,
in voice calls and behind a REST API. Staff watch the conversations live in a dashboard
and take them over when a person is needed.

## How do I deploy and run it?

To try it, deploy it on your own server or laptop with one command, which installs and
runs it: ./scripts/serve. With no configuration it starts an embedded PostgreSQL under
./var and serves the hub on port 8080 (PORT to change it). To deploy it in production, run three
commands from the Procfile, configured by environment variables alone: python -m hub
migrate once per release, then any number of web processes (python -m hub serve) and
workers (python -m agents_runtime).

## How do I scale it out?

Set DATABASE_URL and REDIS_URL to run several web and worker processes behind a load
balancer. Redis carries the event bus, the shared rate limits and the job queue, so any
web process can serve any visitor and any worker can answer any conversation.

## Is my data safe? Privacy and tenancy

Every company's data is kept apart by PostgreSQL row-level security: a query that forgets
its company filter still sees only one company's rows. GDPR export and erasure are built in.

## What does it cost? Pricing

Syntera hub is free software under the Apache-2.0 licence. You pay only for the model
provider you choose; the built-in offline responder costs nothing.
"""


@dataclass
class Demo:
    company_id: str
    agent_id: str
    key: str
    email: str
    password: str


# Where the web app keeps the demo it made (the demo page reads it).
DEMO = web.AppKey("demo", Demo)


def _path(services: Services) -> Path:
    return services.settings.data_dir / "demo.json"


def local_origins(host: str, port: int) -> list[str]:
    hosts = (
        {host, "127.0.0.1", "localhost"}
        if host in ("127.0.0.1", "localhost", "0.0.0.0")
        else {host}
    )
    return sorted(f"http://{h}:{port}" for h in hosts if h != "0.0.0.0")


async def ensure_demo(services: Services) -> Demo:
    """The demo of this data dir, made on first start."""
    path = _path(services)
    settings = services.settings
    if path.exists():
        demo = Demo(**json.loads(path.read_text()))
        async with services.db.tenant(UUID(demo.company_id)) as conn:
            # The page is served from wherever this start listens (HOST, PORT).
            kept = await agents.get(conn, UUID(demo.agent_id)) is not None and (
                await keys.set_origins(
                    conn, key_hash(demo.key), local_origins(settings.host, settings.port)
                )
            )
            # A demo made by an earlier release learns this release's text.
            rewritten = kept and await knowledge.replace_text(
                conn, UUID(demo.agent_id), KNOWLEDGE_FILE, KNOWLEDGE.encode()
            )
        if rewritten:
            services.knowledge.wake()  # committed: the ingestion loop can claim it
        if kept:
            return demo
    password = secrets.token_urlsafe(12)
    key, digest, prefix = new_key()
    async with services.db.system() as conn:
        existing = await users.find_for_login(conn, DEMO_EMAIL)
        if existing is not None:
            company_id = existing["company_id"]
            await conn.execute(
                "UPDATE users SET password_hash = $2 WHERE id = $1",
                existing["id"],
                await hash_password(password),
            )
        else:
            company_id = (await companies.create(conn, "Syntera Demo"))["id"]
            await users.create(
                conn,
                company_id=company_id,
                email=DEMO_EMAIL,
                role="owner",
                password_hash=await hash_password(password),
                name="Demo owner",
            )
    async with services.db.tenant(company_id) as conn:
        agent = await agents.create(
            conn,
            company_id,
            {
                "name": "Syntera Guide",
                "description": "Answers questions about Syntera hub",
                "system_prompt": SYSTEM_PROMPT,
                "model": "gpt-4o-mini",
                "temperature": 0.2,
                "max_tokens": 500,
                "greeting": GREETING,
                "tools": ["handoff_to_human"],
            },
        )
        await keys.create(
            conn,
            company_id=company_id,
            agent_id=agent["id"],
            key_hash=digest,
            key_prefix=prefix,
            allowed_origins=local_origins(settings.host, settings.port),
        )
    await services.knowledge.add_text(
        company_id,
        title="About Syntera hub",
        filename=KNOWLEDGE_FILE,
        text=KNOWLEDGE,
        agent_id=agent["id"],
    )
    demo = Demo(str(company_id), str(agent["id"]), key, DEMO_EMAIL, password)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(asdict(demo), f)
    log.info('{"event":"demo_created","agent_id":"%s"}', agent["id"])
    return demo
