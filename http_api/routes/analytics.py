"""Analytics (seed: Analytics APIs), over every row of the range.

Ranges are ISO 8601 dates or date-times, both inclusive (a plain date is a
whole day in `tz`, default UTC; http_api.schemas.DateRange); without dates,
the last 30 days up to today. Conversations belong to a range by when they
started; replies and their tokens by when they were sent.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from typing import Literal
from uuid import UUID

from pydantic import BaseModel

from http_api.routes import api
from http_api.routing import Call
from http_api.schemas import DateRange
from hub import pricing
from hub.store import analytics

CHANNELS = ("chat", "voice", "phone")
DEFAULT_DAYS = 30


class AnalyticsQuery(DateRange):
    def resolved(self):
        """The range's [start, end) instants, filling in the default range:
        30 days counted in `tz` from the bound that is given, or up to today."""
        start, end = self.startDate, self.endDate
        length = timedelta(days=DEFAULT_DAYS - 1)
        if end is None:
            end = self.local_day(start) + length if start else self.today()
        if start is None:
            start = self.local_day(end) - length
        return self.model_copy(update={"startDate": start, "endDate": end}).bounds()


class TimelineQuery(AnalyticsQuery):
    groupBy: Literal["day", "week", "month"] = "day"


class Overview(BaseModel):
    totalConversations: int
    activeConversations: int
    activeAgents: int
    avgResponseTime: int | None
    userSatisfaction: float | None


class TimelinePoint(BaseModel):
    date: str
    count: int


class ChannelCount(BaseModel):
    channel: str
    count: int


class ConversationAnalytics(BaseModel):
    timeline: list[TimelinePoint]
    byChannel: list[ChannelCount]
    avgDuration: int | None


class ModelCost(BaseModel):
    model: str | None
    promptTokens: int
    completionTokens: int
    totalTokens: int
    cost: float | None
    priced: bool


class AgentCost(BaseModel):
    agentId: UUID | None
    agentName: str | None
    totalTokens: int
    cost: float


class CostAnalytics(BaseModel):
    totalTokens: int
    estimatedCost: float
    currency: str = "USD"
    byModel: list[ModelCost]
    byAgent: list[AgentCost]
    unpriced: list[str | None]


class AgentPerformance(BaseModel):
    agentId: UUID
    agentName: str
    conversationCount: int
    avgResponseTime: int | None
    satisfaction: float | None


class AgentAnalytics(BaseModel):
    agents: list[AgentPerformance]


async def _concurrently(call: Call, *queries):
    """Run independent analytics queries at once, each in a tenant transaction
    of its own: the database works on them in parallel, and the answer takes
    as long as the slowest instead of their sum."""

    async def run(query):
        async with call.tenant() as conn:
            await analytics.prefer_custom_plans(conn)
            return await query(conn)

    return await asyncio.gather(*(run(q) for q in queries))


def _ms(value) -> int | None:
    return None if value is None else round(float(value))


def _rating(value) -> float | None:
    return None if value is None else round(float(value), 2)


@api.get("/api/analytics/overview", query=AnalyticsQuery, response=Overview, tags=("analytics",))
async def overview(call: Call) -> dict:
    """Totals for the range."""
    start, end = call.query.resolved()
    args = (call.user.company_id, start, end)
    counts, response, rating = await _concurrently(
        call,
        lambda conn: analytics.conversation_counts(conn, *args),
        lambda conn: analytics.response_time(conn, *args),
        lambda conn: analytics.satisfaction(conn, *args),
    )
    return {
        "totalConversations": counts["total"],
        "activeConversations": counts["active"],
        "activeAgents": counts["agents"],
        "avgResponseTime": _ms(response),
        "userSatisfaction": _rating(rating),
    }


@api.get(
    "/api/analytics/conversations",
    query=TimelineQuery,
    response=ConversationAnalytics,
    tags=("analytics",),
)
async def conversation_analytics(call: Call) -> dict:
    """A zero-filled timeline, counts by channel and the mean duration."""
    q: TimelineQuery = call.query
    start, end = q.resolved()
    args = (call.user.company_id, start, end)
    points, channels, counts = await _concurrently(
        call,
        lambda conn: analytics.timeline(conn, *args, q.groupBy, q.tz),
        lambda conn: analytics.by_channel(conn, *args),
        lambda conn: analytics.conversation_counts(conn, *args),
    )
    return {
        "timeline": [{"date": p["date"].isoformat(), "count": p["count"]} for p in points],
        "byChannel": [
            {"channel": c, "count": channels.get(c, 0)}
            for c in (*CHANNELS, *sorted(set(channels) - set(CHANNELS)))
        ],
        "avgDuration": _ms(counts["avg_duration"]),
    }


@api.get("/api/analytics/costs", query=AnalyticsQuery, response=CostAnalytics, tags=("analytics",))
async def cost_analytics(call: Call) -> dict:
    """Tokens and estimated cost, by model and by agent."""
    start, end = call.query.resolved()
    company_id = call.user.company_id
    usage, names = await _concurrently(
        call,
        lambda conn: analytics.token_usage(conn, company_id, start, end),
        lambda conn: analytics.agent_names(conn, company_id),
    )

    by_model: dict[str | None, list[int]] = {}
    by_agent: dict[UUID | None, list] = {}
    total_cost = Decimal(0)
    for row in usage:
        prompt, completion = row["prompt_tokens"], row["completion_tokens"]
        tokens = by_model.setdefault(row["model"], [0, 0])
        tokens[0] += prompt
        tokens[1] += completion
        price = pricing.cost(row["model"], prompt, completion) or Decimal(0)
        agent = by_agent.setdefault(row["agent_id"], [0, Decimal(0)])
        agent[0] += prompt + completion
        agent[1] += price
        total_cost += price

    models = []
    for model, (prompt, completion) in sorted(by_model.items(), key=lambda kv: str(kv[0])):
        price = pricing.cost(model, prompt, completion)
        models.append(
            {
                "model": model,
                "promptTokens": prompt,
                "completionTokens": completion,
                "totalTokens": prompt + completion,
                "cost": None if price is None else round(float(price), 6),
                "priced": price is not None,
            }
        )
    return {
        "totalTokens": sum(m["totalTokens"] for m in models),
        "estimatedCost": round(float(total_cost), 6),
        "byModel": models,
        "byAgent": sorted(
            (
                {
                    "agentId": agent_id,
                    "agentName": names.get(agent_id),
                    "totalTokens": tokens,
                    "cost": round(float(cost), 6),
                }
                for agent_id, (tokens, cost) in by_agent.items()
            ),
            key=lambda a: -a["totalTokens"],
        ),
        "unpriced": [m["model"] for m in models if not m["priced"]],
    }


@api.get(
    "/api/analytics/agents", query=AnalyticsQuery, response=AgentAnalytics, tags=("analytics",)
)
async def agent_analytics(call: Call) -> dict:
    """Per agent: conversations, mean response time and satisfaction."""
    start, end = call.query.resolved()
    company_id = call.user.company_id
    args = (company_id, start, end)
    names, counts, response, rating = await _concurrently(
        call,
        lambda conn: analytics.agent_names(conn, company_id),
        lambda conn: analytics.conversations_per_agent(conn, *args),
        lambda conn: analytics.response_time_per_agent(conn, *args),
        lambda conn: analytics.satisfaction_per_agent(conn, *args),
    )
    agents = [
        {
            "agentId": agent_id,
            "agentName": name,
            "conversationCount": counts.get(agent_id, 0),
            "avgResponseTime": _ms(response.get(agent_id)),
            "satisfaction": _rating(rating.get(agent_id)),
        }
        for agent_id, name in names.items()
    ]
    agents.sort(key=lambda a: (-a["conversationCount"], a["agentName"]))
    return {"agents": agents}


class LatencyStage(BaseModel):
    avg: int | None
    p50: int | None
    p95: int | None


class VoiceAnalytics(BaseModel):
    turns: int
    interrupted: int
    retrievalSkipped: int
    # Milliseconds per stage: end of speech → final transcript, the model's
    # first token, the first synthesised audio, and end of speech → the
    # agent's first sound (total).
    latency: dict[str, LatencyStage]


@api.get("/api/analytics/voice", query=AnalyticsQuery, response=VoiceAnalytics, tags=("analytics",))
async def voice_analytics(call: Call) -> dict:
    """Voice replies: counts, interruptions, retrieval skips and latency per stage."""
    start, end = call.query.resolved()
    (row,) = await _concurrently(
        call, lambda conn: analytics.voice_turns(conn, call.user.company_id, start, end)
    )
    return {
        "turns": row["turns"],
        "interrupted": row["interrupted"],
        "retrievalSkipped": row["retrieval_skipped"],
        "latency": {
            name: {stat: _ms(row[f"{name}_{stat}"]) for stat in ("avg", "p50", "p95")}
            for name in analytics.VOICE_LATENCY
        },
    }
