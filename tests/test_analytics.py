"""Analytics against a hand-computed fixture with known timestamps."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from hub.services import SERVICES
from tests.helpers import assert_error, signup


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 1, day, hour, minute, second, tzinfo=UTC)


@pytest.fixture
async def fixture(client):
    """Two agents, five conversations, replies with known response times and tokens.

    | conv | agent | channel | started (UTC)       | ended      | replies (ms, model, tokens)          | rating |
    | c1   | A     | chat    | 01-10 10:00         | +300 s     | 1000 & 3000, gpt-4o-mini 1000+500 ×2  | 5      |
    | c2   | A     | voice   | 01-10 23:30         | active     |                                      |        |
    | c3   | B     | chat    | 01-12 08:00         | +600 s     | 5000, mystery-model 300+100          | 2      |
    | c4   | B     | phone   | 01-20 12:00         | active     |                                      |        |
    | c5   | A     | chat    | 01-09 23:59:59      | active     |                                      |        |
    """
    account = await signup(client)
    company = uuid.UUID(account.company_id)
    db = client.app[SERVICES].db
    async with db.tenant(company) as conn:
        agent_a = await conn.fetchval(
            "INSERT INTO agents (company_id, name, model, temperature, max_tokens)"
            " VALUES ($1, 'Agent A', 'gpt-4o-mini', 0, 100) RETURNING id",
            company,
        )
        agent_b = await conn.fetchval(
            "INSERT INTO agents (company_id, name, model, temperature, max_tokens)"
            " VALUES ($1, 'Agent B', 'mystery-model', 0, 100) RETURNING id",
            company,
        )

        async def conversation(agent, channel, started, ended=None):
            return await conn.fetchval(
                """INSERT INTO conversations (company_id, agent_id, channel, status, started_at, ended_at)
                   VALUES ($1, $2, $3, $4, $5, $6) RETURNING id""",
                company,
                agent,
                channel,
                "ended" if ended else "active",
                started,
                ended,
            )

        async def reply(conv, seq, agent, when, ms, model, prompt, completion):
            await conn.execute(
                """INSERT INTO messages (company_id, conversation_id, seq, sender_type, sender_id,
                       content, created_at, response_ms, model, prompt_tokens, completion_tokens)
                   VALUES ($1, $2, $3, 'agent', $4, 'reply', $5, $6, $7, $8, $9)""",
                company,
                conv,
                seq,
                agent,
                when,
                ms,
                model,
                prompt,
                completion,
            )

        c1 = await conversation(agent_a, "chat", at(10, 10), at(10, 10, 5))
        await conversation(agent_a, "voice", at(10, 23, 30))
        c3 = await conversation(agent_b, "chat", at(12, 8), at(12, 8, 10))
        await conversation(agent_b, "phone", at(20, 12))
        await conversation(agent_a, "chat", at(9, 23, 59, 59))
        await reply(c1, 1, agent_a, at(10, 10, 0, 5), 1000, "gpt-4o-mini", 1000, 500)
        await reply(c1, 2, agent_a, at(10, 10, 1), 3000, "gpt-4o-mini", 1000, 500)
        await reply(c3, 1, agent_b, at(12, 8, 0, 10), 5000, "mystery-model", 300, 100)
        for conv, rating in ((c1, 5), (c3, 2)):
            await conn.execute(
                "INSERT INTO conversation_ratings (company_id, conversation_id, rating)"
                " VALUES ($1, $2, $3)",
                company,
                conv,
                rating,
            )
    return account, str(agent_a), str(agent_b)


async def get(client, account, path):
    response = await client.get(path, headers=account.headers)
    assert response.status == 200, await response.text()
    return await response.json()


RANGE = "startDate=2026-01-10&endDate=2026-01-12"


async def test_overview(client, fixture):
    account, *_ = fixture
    assert await get(client, account, f"/api/analytics/overview?{RANGE}") == {
        "totalConversations": 3,
        "activeConversations": 1,
        "activeAgents": 2,
        "avgResponseTime": 3000,
        "userSatisfaction": 3.5,
    }


async def test_conversations_timeline_channels_duration(client, fixture):
    account, *_ = fixture
    body = await get(client, account, f"/api/analytics/conversations?{RANGE}&groupBy=day")
    assert body["timeline"] == [
        {"date": "2026-01-10", "count": 2},
        {"date": "2026-01-11", "count": 0},
        {"date": "2026-01-12", "count": 1},
    ]
    assert body["byChannel"] == [
        {"channel": "chat", "count": 2},
        {"channel": "voice", "count": 1},
        {"channel": "phone", "count": 0},
    ]
    assert body["avgDuration"] == 450


async def test_time_zone_moves_day_boundaries(client, fixture):
    account, *_ = fixture
    # Tokyo is UTC+9: c5 (01-09 23:59:59Z) falls on 01-10 and c2 (01-10 23:30Z) on 01-11.
    body = await get(client, account, f"/api/analytics/conversations?{RANGE}&tz=Asia/Tokyo")
    assert [p["count"] for p in body["timeline"]] == [2, 1, 1]
    overview = await get(client, account, f"/api/analytics/overview?{RANGE}&tz=Asia/Tokyo")
    assert overview["totalConversations"] == 4


async def test_weeks_and_months_are_zero_filled_and_sum_to_the_total(client, fixture):
    account, *_ = fixture
    month = "startDate=2026-01-01&endDate=2026-01-31"
    weeks = await get(client, account, f"/api/analytics/conversations?{month}&groupBy=week")
    assert weeks["timeline"] == [
        {"date": "2025-12-29", "count": 0},
        {"date": "2026-01-05", "count": 3},
        {"date": "2026-01-12", "count": 1},
        {"date": "2026-01-19", "count": 1},
        {"date": "2026-01-26", "count": 0},
    ]
    total = (await get(client, account, f"/api/analytics/overview?{month}"))["totalConversations"]
    assert sum(p["count"] for p in weeks["timeline"]) == total == 5
    assert sum(c["count"] for c in weeks["byChannel"]) == total
    quarter = "startDate=2026-01-01&endDate=2026-03-31&groupBy=month"
    months = await get(client, account, f"/api/analytics/conversations?{quarter}")
    assert months["timeline"] == [
        {"date": "2026-01-01", "count": 5},
        {"date": "2026-02-01", "count": 0},
        {"date": "2026-03-01", "count": 0},
    ]


async def test_costs_from_the_pricing_table(client, fixture):
    account, agent_a, agent_b = fixture
    body = await get(client, account, f"/api/analytics/costs?{RANGE}")
    # gpt-4o-mini: 2000 prompt × $0.15/M + 1000 completion × $0.60/M = $0.0009.
    assert body["totalTokens"] == 3400
    assert body["estimatedCost"] == pytest.approx(0.0009)
    assert body["unpriced"] == ["mystery-model"]
    assert body["byModel"] == [
        {
            "model": "gpt-4o-mini",
            "promptTokens": 2000,
            "completionTokens": 1000,
            "totalTokens": 3000,
            "cost": pytest.approx(0.0009),
            "priced": True,
        },
        {
            "model": "mystery-model",
            "promptTokens": 300,
            "completionTokens": 100,
            "totalTokens": 400,
            "cost": None,
            "priced": False,
        },
    ]
    assert body["byAgent"] == [
        {
            "agentId": agent_a,
            "agentName": "Agent A",
            "totalTokens": 3000,
            "cost": pytest.approx(0.0009),
        },
        {"agentId": agent_b, "agentName": "Agent B", "totalTokens": 400, "cost": 0},
    ]


async def test_agent_performance(client, fixture):
    account, agent_a, agent_b = fixture
    body = await get(client, account, f"/api/analytics/agents?{RANGE}")
    assert body["agents"] == [
        {
            "agentId": agent_a,
            "agentName": "Agent A",
            "conversationCount": 2,
            "avgResponseTime": 2000,
            "satisfaction": 5.0,
        },
        {
            "agentId": agent_b,
            "agentName": "Agent B",
            "conversationCount": 1,
            "avgResponseTime": 5000,
            "satisfaction": 2.0,
        },
    ]


async def test_empty_range_and_other_company(client, fixture):
    account, *_ = fixture
    empty = await get(
        client, account, "/api/analytics/overview?startDate=2025-06-01&endDate=2025-06-02"
    )
    assert empty == {
        "totalConversations": 0,
        "activeConversations": 0,
        "activeAgents": 0,
        "avgResponseTime": None,
        "userSatisfaction": None,
    }
    other = await signup(client)
    assert (await get(client, other, f"/api/analytics/overview?{RANGE}"))["totalConversations"] == 0
    costs = await get(client, other, f"/api/analytics/costs?{RANGE}")
    assert costs["totalTokens"] == 0 and costs["byAgent"] == []


async def test_default_range_is_the_last_30_days(client, account):
    body = await get(client, account, "/api/analytics/conversations")
    dates = [p["date"] for p in body["timeline"]]
    today = datetime.now(UTC).date()
    assert len(dates) == 30 and dates[-1] == today.isoformat()
    assert dates[0] == (today - timedelta(days=29)).isoformat()


async def test_range_errors_name_their_field(client, account):
    for query in (
        "startDate=2026-01-12&endDate=2026-01-10",
        "startDate=2025-01-01&endDate=2026-01-02",
    ):
        response = await client.get(f"/api/analytics/overview?{query}", headers=account.headers)
        assert list((await response.json())["details"]["fields"]) == ["endDate"], query


@pytest.mark.parametrize(
    "query",
    [
        "startDate=2026-01-12&endDate=2026-01-10",
        "startDate=2025-01-01&endDate=2026-01-02",
        "startDate=yesterday",
        "groupBy=year",
        "tz=Nowhere/City",
    ],
)
async def test_bad_ranges_are_400(client, account, query):
    for endpoint in ("overview", "conversations", "costs", "agents"):
        if "groupBy" in query and endpoint != "conversations":
            continue
        response = await client.get(f"/api/analytics/{endpoint}?{query}", headers=account.headers)
        assert response.status == 400, (endpoint, query)
        assert_error(await response.json(), "VALIDATION_ERROR")


async def test_replies_stored_as_a_model_the_offline_responder_stood_in_for_are_rewritten(
    client,
):
    """Migration 0015: replies the offline responder wrote before it was
    recorded as itself (chat: the agent's model with served_model "offline";
    voice: model "offline"), with estimated tokens, stop costing money."""
    from hub.db.migrate import MIGRATIONS_DIR

    account = await signup(client)
    company = uuid.UUID(account.company_id)
    db = client.app[SERVICES].db
    async with db.tenant(company) as conn:
        agent = await conn.fetchval(
            "INSERT INTO agents (company_id, name, model, temperature, max_tokens)"
            " VALUES ($1, 'A', 'gpt-4o-mini', 0, 100) RETURNING id",
            company,
        )
        conversation = await conn.fetchval(
            "INSERT INTO conversations (company_id, agent_id) VALUES ($1, $2) RETURNING id",
            company,
            agent,
        )
        for seq, meta in enumerate(
            [
                {"model": "gpt-4o-mini", "served_model": "offline", "prompt_tokens": 400,
                 "completion_tokens": 40, "tokens_used": 440, "cost": 0.000084},
                {"model": "offline", "prompt_tokens": 300, "completion_tokens": 30,
                 "tokens_used": 330, "cost": 0.0, "channel": "voice"},
                {"model": "gpt-4o-mini", "served_model": "gpt-4o-mini-2024-07-18",
                 "prompt_tokens": 1000, "completion_tokens": 100, "tokens_used": 1100,
                 "cost": 0.00021},
            ],
            start=1,
        ):  # fmt: skip
            await conn.execute(
                """INSERT INTO messages (company_id, conversation_id, seq, sender_type, sender_id,
                       content, ai_metadata, model, prompt_tokens, completion_tokens)
                   VALUES ($1, $2, $3, 'agent', $4, 'reply', $5::jsonb, $5::jsonb->>'model',
                           ($5::jsonb->>'prompt_tokens')::int,
                           ($5::jsonb->>'completion_tokens')::int)""",
                company,
                conversation,
                seq,
                agent,
                meta,
            )
    sql = next(MIGRATIONS_DIR.glob("0015_*.sql")).read_text()
    async with db.session() as conn:  # as the migrations run: the owner
        await conn.execute(sql)

    costs = await (await client.get("/api/analytics/costs", headers=account.headers)).json()
    assert [(m["model"], m["totalTokens"], m["cost"]) for m in costs["byModel"]] == [
        ("gpt-4o-mini", 1100, 0.00021),
        ("offline-responder", 0, 0),
    ]
    assert costs["estimatedCost"] == 0.00021
    messages = await (
        await client.get(f"/api/conversations/{conversation}/messages", headers=account.headers)
    ).json()
    chat, voice, real = (m["ai_metadata"] for m in messages["messages"])
    assert chat["model"] == chat["served_model"] == "offline-responder"
    assert (chat["tokens_used"], chat["cost"]) == (0, 0)
    assert voice["model"] == "offline-responder" and "served_model" not in voice
    assert voice["channel"] == "voice" and voice["tokens_used"] == 0
    assert real["model"] == "gpt-4o-mini" and real["tokens_used"] == 1100
