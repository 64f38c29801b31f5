"""CRM: contacts and deals, their validation, search, events and isolation."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from hub.services import SERVICES
from tests.helpers import assert_error, signup


async def create_contact(client, account, **fields):
    body = {
        "email": f"jane-{uuid.uuid4().hex[:6]}@example.com",
        "first_name": "Jane",
        "last_name": "Smith",
        "company_name": "Tech Corp",
        "tags": ["prospect"],
        **fields,
    }
    response = await client.post("/api/crm/contacts", json=body, headers=account.headers)
    assert response.status == 201, await response.text()
    return await response.json()


class Events:
    def __init__(self, client, *kinds):
        self.seen = []
        self.kinds = kinds
        client.app[SERVICES].events.subscribe(self.record)

    async def record(self, event):
        if event.type in self.kinds:
            self.seen.append((event.type, event.data))

    async def wait(self, count):
        for _ in range(100):
            if len(self.seen) >= count:
                return self.seen
            await asyncio.sleep(0.02)
        return self.seen


async def test_contact_crud_search_and_events(client, account):
    events = Events(client, "contact.created", "contact.updated")
    jane = await create_contact(
        client,
        account,
        email="Jane.Doe@Example.com",
        first_name="Jane",
        last_name="Doe",
        company_name="Acme Corp",
    )
    await create_contact(
        client,
        account,
        email="john@example.com",
        first_name="John",
        last_name="Roe",
        company_name="Initech",
    )
    await create_contact(
        client, account, email=None, phone="+1 555 0100", first_name="Phone", last_name="Only"
    )

    async def search(term):
        response = await client.get(f"/api/crm/contacts?search={term}", headers=account.headers)
        body = await response.json()
        return body["total"], sorted(c["first_name"] for c in body["contacts"])

    assert await search("acme") == (1, ["Jane"])
    assert await search("JANE DOE") == (1, ["Jane"])
    assert await search("example.com") == (2, ["Jane", "John"])
    assert await search("100%25") == (0, [])  # % is matched literally
    page = await (await client.get("/api/crm/contacts?limit=2", headers=account.headers)).json()
    assert page["total"] == 3 and len(page["contacts"]) == 2

    patched = await client.patch(
        f"/api/crm/contacts/{jane['id']}",
        json={"tags": ["customer"], "company_name": "Acme"},
        headers=account.headers,
    )
    assert (await patched.json())["tags"] == ["customer"]
    seen = await events.wait(4)
    updated = [data for kind, data in seen if kind == "contact.updated"]
    assert sorted(updated[0]["changed"]) == ["company_name", "tags"]
    assert [kind for kind, _ in seen].count("contact.created") == 3

    detail = await (
        await client.get(f"/api/crm/contacts/{jane['id']}", headers=account.headers)
    ).json()
    assert detail["conversations"] == [] and detail["deals"] == []
    assert (
        await client.delete(f"/api/crm/contacts/{jane['id']}", headers=account.headers)
    ).status == 200
    assert (
        await client.get(f"/api/crm/contacts/{jane['id']}", headers=account.headers)
    ).status == 404


async def test_duplicate_email_is_a_conflict(client, account):
    first = await create_contact(client, account, email="dup@example.com")
    response = await client.post(
        "/api/crm/contacts", json={"email": "DUP@example.com"}, headers=account.headers
    )
    assert response.status == 409
    assert_error(await response.json(), "CONFLICT")
    other = await create_contact(client, account, email="other@example.com")
    response = await client.patch(
        f"/api/crm/contacts/{other['id']}",
        json={"email": "dup@example.com"},
        headers=account.headers,
    )
    assert response.status == 409
    total = (await (await client.get("/api/crm/contacts", headers=account.headers)).json())["total"]
    assert total == 2 and first["id"]
    # Another company may use the same email.
    assert (await create_contact(client, await signup(client), email="dup@example.com"))["id"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"email": "not-an-email"}, "email"),
        ({"tags": ["x"]}, "body"),
        ({"first_name": ""}, "first_name"),
        ({"phone": "call me"}, "phone"),
        ({"email": "a@example.com", "tags": [""]}, "tags.0"),
        ({"email": "a@example.com", "rank": 1}, "rank"),
    ],
)
async def test_contact_validation(client, account, body, field):
    response = await client.post("/api/crm/contacts", json=body, headers=account.headers)
    assert response.status == 400
    payload = await response.json()
    assert_error(payload, "VALIDATION_ERROR")
    assert any(f.startswith(field) for f in payload["details"]["fields"]), payload
    assert (await (await client.get("/api/crm/contacts", headers=account.headers)).json())[
        "total"
    ] == 0


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "offset=-1", "limit=x", "search="])
async def test_contact_paging_bounds(client, account, query):
    response = await client.get(f"/api/crm/contacts?{query}", headers=account.headers)
    assert response.status == 400


async def test_deals_lifecycle_filters_and_won_notification(client, account):
    contact = await create_contact(client, account)
    events = Events(client, "deal.created", "deal.updated")
    response = await client.post(
        "/api/crm/deals",
        json={
            "title": "License",
            "value": 50000,
            "stage": "proposal",
            "probability": 75,
            "contact_id": contact["id"],
            "expected_close_date": "2026-02-01",
        },
        headers=account.headers,
    )
    assert response.status == 201, await response.text()
    deal = await response.json()
    assert (deal["value"], deal["stage"], deal["closed_at"]) == (50000, "proposal", None)
    await client.post(
        "/api/crm/deals", json={"title": "Small", "stage": "lead"}, headers=account.headers
    )

    by_stage = await (
        await client.get("/api/crm/deals?stage=proposal", headers=account.headers)
    ).json()
    assert [d["id"] for d in by_stage["deals"]] == [deal["id"]] and by_stage["total"] == 1
    by_contact = await (
        await client.get(f"/api/crm/deals?contact_id={contact['id']}", headers=account.headers)
    ).json()
    assert by_contact["total"] == 1

    won = await (
        await client.patch(
            f"/api/crm/deals/{deal['id']}", json={"stage": "closed_won"}, headers=account.headers
        )
    ).json()
    assert won["stage"] == "closed_won" and won["closed_at"]
    seen = await events.wait(3)
    updates = [data for kind, data in seen if kind == "deal.updated"]
    assert (updates[0]["stage_from"], updates[0]["stage_to"]) == ("proposal", "closed_won")
    unread = await (
        await client.get("/api/notifications?read=false", headers=account.headers)
    ).json()
    assert [n["type"] for n in unread["notifications"]] == ["deal_won"]

    reopened = await (
        await client.patch(
            f"/api/crm/deals/{deal['id']}", json={"stage": "negotiation"}, headers=account.headers
        )
    ).json()
    assert reopened["closed_at"] is None
    detail = await (
        await client.get(f"/api/crm/contacts/{contact['id']}", headers=account.headers)
    ).json()
    assert [d["id"] for d in detail["deals"]] == [deal["id"]]
    assert (
        await client.delete(f"/api/crm/deals/{deal['id']}", headers=account.headers)
    ).status == 200
    assert (await client.get(f"/api/crm/deals/{deal['id']}", headers=account.headers)).status == 404


@pytest.mark.parametrize(
    "body, field",
    [
        ({"title": "x", "value": -1}, "value"),
        ({"title": "x", "probability": 101}, "probability"),
        ({"title": "x", "stage": "won"}, "stage"),
        ({"title": ""}, "title"),
        ({"title": "x", "currency": "dollars"}, "currency"),
        ({"title": "x", "contact_id": str(uuid.uuid4())}, "contact_id"),
    ],
)
async def test_deal_validation(client, account, body, field):
    response = await client.post("/api/crm/deals", json=body, headers=account.headers)
    assert response.status == 400
    assert field in (await response.json())["details"]["fields"]
    assert (await (await client.get("/api/crm/deals", headers=account.headers)).json())[
        "total"
    ] == 0


async def test_a_deal_cannot_point_at_another_companys_contact(client, account):
    theirs = await create_contact(client, await signup(client))
    response = await client.post(
        "/api/crm/deals",
        json={"title": "Steal", "contact_id": theirs["id"]},
        headers=account.headers,
    )
    assert response.status == 400
    assert (await response.json())["details"]["fields"]["contact_id"] == "no such contact"


async def test_crm_isolation(client, account):
    contact = await create_contact(client, account)
    deal = await (
        await client.post("/api/crm/deals", json={"title": "Mine"}, headers=account.headers)
    ).json()
    other = await signup(client)
    assert (await (await client.get("/api/crm/contacts", headers=other.headers)).json())[
        "total"
    ] == 0
    assert (await (await client.get("/api/crm/deals", headers=other.headers)).json())["total"] == 0
    for method, path, kwargs in [
        ("GET", f"/api/crm/contacts/{contact['id']}", {}),
        ("PATCH", f"/api/crm/contacts/{contact['id']}", {"json": {"first_name": "X"}}),
        ("DELETE", f"/api/crm/contacts/{contact['id']}", {}),
        ("GET", f"/api/crm/deals/{deal['id']}", {}),
        ("PATCH", f"/api/crm/deals/{deal['id']}", {"json": {"stage": "closed_lost"}}),
        ("DELETE", f"/api/crm/deals/{deal['id']}", {}),
    ]:
        response = await client.request(method, path, headers=other.headers, **kwargs)
        assert response.status == 404, (method, path)
    assert (
        await client.get(f"/api/crm/contacts/{contact['id']}", headers=account.headers)
    ).status == 200
    assert (
        await (await client.get(f"/api/crm/deals/{deal['id']}", headers=account.headers)).json()
    )["stage"] == "lead"
