"""Demo and benchmark data: realistic, consistent with analytics, fast to write."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hub.seed import seed
from hub.services import SERVICES

ROOT = Path(__file__).resolve().parent.parent


async def test_seeded_data_is_consistent(client):
    db = client.app[SERVICES].db
    email = f"seed-{uuid.uuid4().hex[:6]}@example.com"
    result = await seed(db, email=email, password="seed password", conversations=300, rng_seed=1)
    assert result.conversations == 300 and result.messages >= 600
    login = await client.post("/api/auth/login", json={"email": email, "password": "seed password"})
    headers = {"Authorization": f"Bearer {(await login.json())['access_token']}"}

    async with db.tenant(result.company_id) as conn:
        gaps = await conn.fetchval(
            """SELECT count(*) FROM conversations c
               WHERE c.last_seq <> (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id)"""
        )
        assert gaps == 0  # seq is 1..n in every conversation

    today = datetime.now(UTC).date()
    range_ = f"startDate={today - timedelta(days=95)}&endDate={today}"
    overview = await (await client.get(f"/api/analytics/overview?{range_}", headers=headers)).json()
    assert overview["totalConversations"] == 300
    assert overview["avgResponseTime"] > 0 and 1 <= overview["userSatisfaction"] <= 5
    timeline = await (
        await client.get(f"/api/analytics/conversations?{range_}", headers=headers)
    ).json()
    assert sum(p["count"] for p in timeline["timeline"]) == 300
    costs = await (await client.get(f"/api/analytics/costs?{range_}", headers=headers)).json()
    assert costs["totalTokens"] > 0 and costs["estimatedCost"] > 0 and costs["unpriced"] == []
    contacts = await (await client.get("/api/crm/contacts", headers=headers)).json()
    assert contacts["total"] == result.contacts

    # Seeding again adds to the same company.
    again = await seed(db, email=email, password="ignored", conversations=10, rng_seed=2)
    assert again.company_id == result.company_id


def test_seed_command(database_url):
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "hub",
            "seed",
            "--email",
            f"cli-{uuid.uuid4().hex[:6]}@example.com",
            "--password",
            "seed password",
            "--conversations",
            "20",
        ],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": database_url, "JWT_SECRET": "x" * 40},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "20 conversations" in run.stdout
