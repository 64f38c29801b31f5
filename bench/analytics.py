"""Analytics and conversation listing at 100 000 conversations (~1M messages).

    python -m bench.analytics [--conversations 100000] [--repeat 50]

Seeds a fresh database with `hub.seed`, then measures each analytics endpoint
and GET /api/conversations through HTTP (auth, RLS transactions, JSON), next
to the same store queries run one after the other on one plain connection
(no HTTP, no role switch, no concurrency). The endpoints run their
independent queries concurrently, so a ratio below 1 is possible. Prints a
table, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import UTC, datetime, timedelta

import asyncpg

from bench.common import hub_client, scratch_database, summary, timed
from bench.report import emit, table
from hub.config import Settings
from hub.db import connect
from hub.seed import seed
from hub.store import analytics, conversations

# The query each row's name shows (the 90-day range is left out).
SHOWN_QUERY = {"conversations": "?groupBy=day", "list_conversations": "?limit=20"}


async def main(count: int, repeat: int) -> dict:
    async with scratch_database() as url:
        db = await connect(Settings(database_url=url), max_size=2)
        started = time.perf_counter()
        result = await seed(
            db,
            email="bench@example.com",
            password="bench password",
            conversations=count,
            rng_seed=7,
        )
        seed_seconds = time.perf_counter() - started
        await db.close()
        print(
            f"seeded {result.conversations} conversations, {result.messages} messages"
            f" in {seed_seconds:.1f} s"
        )

        today = datetime.now(UTC).date()
        start_date = today - timedelta(days=89)
        query = f"startDate={start_date}&endDate={today}"
        lo = datetime.combine(start_date, datetime.min.time(), UTC)
        hi = datetime.combine(today + timedelta(days=1), datetime.min.time(), UTC)
        company = result.company_id

        async with hub_client(url) as client:
            login = await client.post(
                "/api/auth/login", json={"email": "bench@example.com", "password": "bench password"}
            )
            headers = {"Authorization": f"Bearer {(await login.json())['access_token']}"}
            plain = await asyncpg.connect(url)

            async def http(path: str):
                response = await client.get(path, headers=headers)
                assert response.status == 200, await response.text()
                await response.read()

            await plain.execute("SET plan_cache_mode = force_custom_plan")

            async def sql_overview():
                await analytics.conversation_counts(plain, company, lo, hi)
                await analytics.response_time(plain, company, lo, hi)
                await analytics.satisfaction(plain, company, lo, hi)

            async def sql_conversations():
                await analytics.timeline(plain, company, lo, hi, "day", "UTC")
                await analytics.by_channel(plain, company, lo, hi)
                await analytics.conversation_counts(plain, company, lo, hi)

            async def sql_costs():
                await analytics.token_usage(plain, company, lo, hi)
                await analytics.agent_names(plain, company)

            async def sql_agents():
                await analytics.agent_names(plain, company)
                await analytics.conversations_per_agent(plain, company, lo, hi)
                await analytics.response_time_per_agent(plain, company, lo, hi)
                await analytics.satisfaction_per_agent(plain, company, lo, hi)

            async def sql_list():
                await conversations.page(plain, company, limit=20, offset=0)

            cases = {
                "overview": (f"/api/analytics/overview?{query}", sql_overview),
                "conversations": (
                    f"/api/analytics/conversations?{query}&groupBy=day",
                    sql_conversations,
                ),
                "costs": (f"/api/analytics/costs?{query}", sql_costs),
                "agents": (f"/api/analytics/agents?{query}", sql_agents),
                "list_conversations": ("/api/conversations?limit=20", sql_list),
            }
            figures, rows = {}, []
            for name, (path, sql) in cases.items():
                api = summary(await timed(lambda path=path: http(path), repeat))
                base = summary(await timed(sql, repeat))
                ratio = round(api["p50_ms"] / base["p50_ms"], 2)
                figures[name] = {**api, "sql_p50_ms": base["p50_ms"], "ratio": ratio}
                rows.append(
                    (f"`GET {path.split('?')[0]}{SHOWN_QUERY.get(name, '')}`",
                     f"{api['p50_ms']} ms", f"{api['p99_ms']} ms", f"{base['p50_ms']} ms", ratio)
                )  # fmt: skip
            await plain.close()
        emit(
            "analytics",
            table(["endpoint", "API p50", "API p99", "plain SQL p50", "ratio"], rows),
        )
        return {
            "conversations": result.conversations,
            "messages": result.messages,
            "seed_seconds": round(seed_seconds, 1),
            "endpoints": figures,
        }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.conversations, args.repeat))))
