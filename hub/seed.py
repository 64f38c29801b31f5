"""Realistic demo and benchmark data, written with COPY.

`python -m hub seed --email E --password P --conversations N` adds N
conversations spread over the last `days` days to the company owned by E
(created if missing), with agents, contacts, deals, messages (about ten per
conversation, with response times and token usage) and ratings. 100 000
conversations — about a million messages — take well under a minute.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from hub.auth import hash_password
from hub.db import Database
from hub.store import companies, users

AGENTS = [
    ("Support Agent", "gpt-4o-mini"),
    ("Sales Agent", "gpt-4o"),
    ("Billing Agent", "gpt-4.1-mini"),
    ("Onboarding Agent", "gpt-4o-mini"),
]
CHANNELS = (["chat"] * 7) + (["voice"] * 2) + ["phone"]
FIRST = ["Ana", "Ben", "Chloé", "Dev", "Emma", "Femi", "Gao", "Hana", "Ivan", "Jia", "Kofi", "Lena"]
LAST = ["Silva", "Okafor", "Müller", "Tanaka", "Smith", "Kowalski", "Haddad", "Nguyen", "Rossi"]
ORGS = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell", None]
QUESTIONS = [
    "Hi, what is your refund policy?",
    "How do I reset my password?",
    "Can I upgrade my plan mid-month?",
    "Do you ship to Canada?",
    "My invoice looks wrong, can you check?",
    "Is there a discount for annual billing?",
]
ANSWERS = [
    "Refunds are available within 30 days of purchase [1].",
    "Use the 'Forgot password' link on the sign-in page [1].",
    "Yes, upgrades are prorated to the day [2].",
    "We ship to Canada in 5–7 business days [1].",
    "I've flagged your invoice for our billing team.",
    "Annual billing saves two months [1].",
]
STAGES = ["lead", "qualified", "proposal", "negotiation", "closed_won", "closed_lost"]


@dataclass
class SeedResult:
    company_id: uuid.UUID
    conversations: int
    messages: int
    contacts: int
    deals: int


async def _company_of(db: Database, email: str, password: str) -> uuid.UUID:
    async with db.system() as conn:
        user = await users.find_for_login(conn, email)
        if user is not None:
            return user["company_id"]
        company = await companies.create(conn, "Demo Company")
        await users.create(
            conn,
            company_id=company["id"],
            email=email,
            role="owner",
            password_hash=await hash_password(password),
        )
        return company["id"]


async def _agents(conn: asyncpg.Connection, company_id: uuid.UUID) -> list[tuple[uuid.UUID, str]]:
    rows = await conn.fetch("SELECT id, model FROM agents WHERE company_id = $1", company_id)
    if rows:
        return [(r["id"], r["model"]) for r in rows]
    made = []
    for name, model in AGENTS:
        agent_id = await conn.fetchval(
            """INSERT INTO agents (company_id, name, model, temperature, max_tokens, system_prompt)
               VALUES ($1, $2, $3, 0.3, 800, 'You answer from the knowledge base.')
               RETURNING id""",
            company_id,
            name,
            model,
        )
        made.append((agent_id, model))
    return made


def _started_at(rng: random.Random, now: datetime, days: int) -> datetime:
    # Busier on weekdays and in working hours, like real support traffic.
    while True:
        moment = now - timedelta(seconds=rng.uniform(0, days * 86400))
        weight = (0.4 if moment.weekday() >= 5 else 1.0) * (1.0 if 8 <= moment.hour < 20 else 0.3)
        if rng.random() < weight:
            return moment


async def seed(
    db: Database,
    *,
    email: str,
    password: str,
    conversations: int,
    days: int = 90,
    rng_seed: int | None = None,
) -> SeedResult:
    rng = random.Random(rng_seed)
    company_id = await _company_of(db, email, password)
    now = datetime.now(UTC)
    contacts: list[tuple[Any, ...]] = []
    for _ in range(max(1, conversations // 4)):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        contact_id = uuid.uuid4()
        email_addr = f"{first.lower()}.{last.lower()}.{contact_id.hex[:8]}@example.com"
        created = now - timedelta(days=rng.uniform(0, days))
        contacts.append(
            (contact_id, company_id, email_addr, first, last, rng.choice(ORGS), created, created)
        )

    conv_rows, message_rows, rating_rows = [], [], []
    async with db.system() as conn:
        agents = await _agents(conn, company_id)
    for _ in range(conversations):
        conv_id = uuid.uuid4()
        agent_id, model = rng.choice(agents)
        started = _started_at(rng, now, days)
        contact = rng.choice(contacts)[0] if rng.random() < 0.6 else None
        turns = rng.randint(1, 8)
        moment, seq = started, 0
        for turn in range(turns):
            question, answer = rng.randrange(len(QUESTIONS)), rng.randrange(len(ANSWERS))
            moment += timedelta(seconds=rng.uniform(5, 90) if turn else 0)
            seq += 1
            message_rows.append(
                (
                    uuid.uuid4(),
                    company_id,
                    conv_id,
                    seq,
                    "user",
                    None,
                    QUESTIONS[question],
                    None,
                    None,
                    None,
                    None,
                    None,
                    moment,
                )
            )
            response_ms = int(rng.lognormvariate(7.0, 0.5))  # median about 1.1 s
            moment += timedelta(milliseconds=response_ms)
            prompt, completion = rng.randint(300, 2500), rng.randint(20, 300)
            metadata = {
                "model": model,
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "tokens_used": prompt + completion,
            }
            seq += 1
            message_rows.append(
                (
                    uuid.uuid4(),
                    company_id,
                    conv_id,
                    seq,
                    "agent",
                    agent_id,
                    ANSWERS[answer],
                    metadata,
                    response_ms,
                    model,
                    prompt,
                    completion,
                    moment,
                )
            )
        recent = now - started < timedelta(hours=2)
        status = "active" if recent else rng.choices(["ended", "archived"], [19, 1])[0]
        ended = None if status == "active" else moment + timedelta(seconds=rng.uniform(5, 120))
        conv_rows.append(
            (
                conv_id,
                company_id,
                agent_id,
                contact,
                rng.choice(CHANNELS),
                status,
                started,
                ended,
                moment,
                seq,
            )
        )
        if ended is not None and rng.random() < 0.3:
            rating = rng.choices([1, 2, 3, 4, 5], [1, 1, 2, 4, 6])[0]
            rating_rows.append((uuid.uuid4(), company_id, conv_id, rating, ended))

    deal_rows = []
    for contact in rng.sample(contacts, k=len(contacts) // 5):
        created = contact[6]
        deal_rows.append(
            (
                uuid.uuid4(),
                company_id,
                contact[0],
                f"{contact[5] or contact[4]} licence",
                rng.randrange(500, 50_000),
                rng.choice(STAGES),
                rng.randrange(0, 101),
                (created + timedelta(days=rng.randint(7, 60))).date(),
                created,
                created,
            )
        )

    async with db.system() as conn:
        await conn.copy_records_to_table(
            "contacts",
            records=contacts,
            columns=[
                "id",
                "company_id",
                "email",
                "first_name",
                "last_name",
                "company_name",
                "created_at",
                "updated_at",
            ],
        )
        await conn.copy_records_to_table(
            "conversations",
            records=conv_rows,
            columns=[
                "id",
                "company_id",
                "agent_id",
                "contact_id",
                "channel",
                "status",
                "started_at",
                "ended_at",
                "last_message_at",
                "last_seq",
            ],
        )
        await conn.copy_records_to_table(
            "messages",
            records=message_rows,
            columns=[
                "id",
                "company_id",
                "conversation_id",
                "seq",
                "sender_type",
                "sender_id",
                "content",
                "ai_metadata",
                "response_ms",
                "model",
                "prompt_tokens",
                "completion_tokens",
                "created_at",
            ],
        )
        await conn.copy_records_to_table(
            "conversation_ratings",
            records=rating_rows,
            columns=["id", "company_id", "conversation_id", "rating", "created_at"],
        )
        await conn.copy_records_to_table(
            "deals",
            records=deal_rows,
            columns=[
                "id",
                "company_id",
                "contact_id",
                "title",
                "value",
                "stage",
                "probability",
                "expected_close_date",
                "created_at",
                "updated_at",
            ],
        )
    async with db.session() as conn:
        # Fresh statistics and visibility map, as autovacuum would leave them:
        # the planner picks the analytics indexes, and index-only scans stay so.
        await conn.execute(
            "VACUUM ANALYZE contacts, conversations, messages, conversation_ratings, deals"
        )
    return SeedResult(company_id, len(conv_rows), len(message_rows), len(contacts), len(deal_rows))
