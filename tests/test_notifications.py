"""Notifications: per user, read state, counts, and the one way to create them."""

from __future__ import annotations

import uuid

from hub.auth import mint_token
from hub.notifications import notify
from hub.services import SERVICES
from tests.helpers import assert_error, signup


async def test_notifications_are_per_user(client, base_settings):
    owner = await signup(client)
    services = client.app[SERVICES]
    company_id = uuid.UUID(owner.company_id)
    colleague_id = uuid.uuid4()
    async with services.db.system() as conn:
        await conn.execute(
            "INSERT INTO users (id, company_id, email, role) VALUES ($1, $2, $3, 'member')",
            colleague_id,
            company_id,
            f"colleague-{colleague_id.hex[:6]}@example.com",
        )
    colleague, _ = mint_token(
        base_settings.ensure_jwt_secret(),
        user_id=colleague_id,
        company_id=company_id,
        role="member",
        email=None,
    )
    colleague_headers = {"Authorization": f"Bearer {colleague}"}
    # Default recipients: owners and admins. One transaction each: newest first.
    for kind, title, roles in [
        ("handoff_requested", "A customer is waiting", None),
        ("document_processed", "Policy.pdf is ready", None),
        ("workflow_notify", "For the team", ("member",)),
    ]:
        async with services.db.tenant(company_id) as conn:
            await notify(
                services.db, conn, company_id=company_id, type=kind, title=title, roles=roles
            )

    mine = await (await client.get("/api/notifications", headers=owner.headers)).json()
    assert mine["total"] == 2
    assert [n["title"] for n in mine["notifications"]] == [
        "Policy.pdf is ready",
        "A customer is waiting",
    ]
    theirs = await (await client.get("/api/notifications", headers=colleague_headers)).json()
    assert [n["title"] for n in theirs["notifications"]] == ["For the team"]

    count = await (
        await client.get("/api/notifications/unread-count", headers=owner.headers)
    ).json()
    assert count == {"count": 2}
    first = mine["notifications"][0]["id"]
    # Someone else's notification is not found, and stays unread.
    assert (
        await client.post(f"/api/notifications/{first}/read", headers=colleague_headers)
    ).status == 404
    read = await (
        await client.post(f"/api/notifications/{first}/read", headers=owner.headers)
    ).json()
    assert read["read"] is True and read["read_at"]
    unread = await (await client.get("/api/notifications?read=false", headers=owner.headers)).json()
    assert unread["total"] == 1
    done = await (await client.post("/api/notifications/read-all", headers=owner.headers)).json()
    assert done == {"updated": 1}
    assert (
        await (await client.get("/api/notifications/unread-count", headers=owner.headers)).json()
    ) == {"count": 0}
    assert (
        await (
            await client.get("/api/notifications/unread-count", headers=colleague_headers)
        ).json()
    ) == {"count": 1}


async def test_bad_notification_queries(client, account):
    for query in ("read=maybe", "limit=0", "offset=-2"):
        response = await client.get(f"/api/notifications?{query}", headers=account.headers)
        assert response.status == 400, query
        assert_error(await response.json(), "VALIDATION_ERROR")
    missing = await client.post(f"/api/notifications/{uuid.uuid4()}/read", headers=account.headers)
    assert missing.status == 404
