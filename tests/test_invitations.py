"""Invitations: an owner or admin invites an email; the person joins with the
invitation's token and an identity carrying that email — an account signed
up with the hub, or a Supabase user, whose `sub` is then linked."""

from __future__ import annotations

import uuid

import asyncpg

from tests.helpers import assert_error, signup
from tests.supabase import supabase_token

PASSWORD = "correct horse battery"


def new_email(label: str = "staff") -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}@example.com"


async def invite(client, account, email: str, role: str = "member") -> dict:
    response = await client.post(
        "/api/invitations", json={"email": email, "role": role}, headers=account.headers
    )
    assert response.status == 201, await response.text()
    return await response.json()


async def user_count(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval("SELECT count(*) FROM users")
    finally:
        await conn.close()


async def test_signing_up_with_an_invitation_joins_the_company(client, account):
    email = new_email()
    invitation = await invite(client, account, email, role="admin")
    assert invitation["status"] == "pending" and invitation["token"].startswith("inv_")
    assert invitation["company_id"] == account.company_id
    listed = await (await client.get("/api/invitations", headers=account.headers)).json()
    assert [i["id"] for i in listed["invitations"]] == [invitation["id"]]
    assert "token" not in listed["invitations"][0]  # shown once

    response = await client.post(
        "/api/invitations/accept",
        json={"token": invitation["token"], "email": email.upper(), "password": PASSWORD},
    )
    assert response.status == 201, await response.text()
    session = await response.json()
    assert session["company"]["id"] == account.company_id
    assert session["user"]["role"] == "admin" and session["user"]["email"] == email
    headers = {"Authorization": f"Bearer {session['access_token']}"}
    assert (await client.get("/api/audit-log", headers=headers)).status == 200  # an admin
    team = await (await client.get("/api/users", headers=account.headers)).json()
    assert {u["email"] for u in team["users"]} == {account.email, email}
    login = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert (await login.json())["company"]["id"] == account.company_id

    listed = await (await client.get("/api/invitations", headers=account.headers)).json()
    assert listed["invitations"][0]["status"] == "accepted"
    assert listed["invitations"][0]["user_id"] == session["user"]["id"]
    again = await client.post(
        "/api/invitations/accept",
        json={"token": invitation["token"], "email": email, "password": PASSWORD},
    )
    assert again.status == 404
    assert_error(await again.json(), "NOT_FOUND")


async def test_an_invitation_cannot_be_used_for_another_email(client, account, database_url):
    invitation = await invite(client, account, new_email())
    before = await user_count(database_url)
    response = await client.post(
        "/api/invitations/accept",
        json={"token": invitation["token"], "email": new_email("other"), "password": PASSWORD},
    )
    assert response.status == 403
    assert_error(await response.json(), "FORBIDDEN")
    assert await user_count(database_url) == before
    listed = await (await client.get("/api/invitations", headers=account.headers)).json()
    assert listed["invitations"][0]["status"] == "pending"


async def test_a_supabase_user_with_the_invited_email_is_linked(
    client, account, base_settings, database_url
):
    secret = base_settings.ensure_jwt_secret().jwt_secret
    email, sub = new_email(), str(uuid.uuid4())
    invitation = await invite(client, account, email)
    token = supabase_token(secret, sub, email)
    headers = {"Authorization": f"Bearer {token}"}
    # Before accepting, the hub does not know the user.
    assert (await client.get("/api/agents", headers=headers)).status == 401

    before = await user_count(database_url)
    refusals = [
        ("no token", {}, 401, "UNAUTHORIZED"),
        (
            "another email",
            {"Authorization": f"Bearer {supabase_token(secret, sub, new_email('other'))}"},
            403,
            "FORBIDDEN",
        ),
        (
            "anonymous",
            {"Authorization": f"Bearer {supabase_token(secret, sub, None, is_anonymous=True)}"},
            401,
            "INVALID_TOKEN",
        ),
        (
            "signed with another secret",
            {"Authorization": "Bearer " + supabase_token("s" * 48, sub, email)},
            401,
            "INVALID_TOKEN",
        ),
        ("a hub token", account.headers, 409, "CONFLICT"),
    ]
    for name, refused_headers, status, code in refusals:
        response = await client.post(
            "/api/invitations/link", json={"token": invitation["token"]}, headers=refused_headers
        )
        assert response.status == status, (name, await response.text())
        assert_error(await response.json(), code)
    assert await user_count(database_url) == before

    linked = await client.post(
        "/api/invitations/link", json={"token": invitation["token"]}, headers=headers
    )
    assert linked.status == 201, await linked.text()
    body = await linked.json()
    assert body["company"]["id"] == account.company_id and body["user"]["role"] == "member"
    hub_user_id = body["user"]["id"]
    assert hub_user_id != sub  # the hub's own id, linked to Supabase's

    # From now on the same kind of token works, in the inviting company.
    me = await (await client.get("/api/auth/me", headers=headers)).json()
    assert me["user"]["id"] == hub_user_id and me["company"]["id"] == account.company_id
    created = await client.post("/api/agents", json={"name": "Linked"}, headers=headers)
    assert (await created.json())["company_id"] == account.company_id
    # Once linked, the identity cannot take a second invitation.
    second = await invite(client, await signup(client), new_email())
    response = await client.post(
        "/api/invitations/link", json={"token": second["token"]}, headers=headers
    )
    assert response.status == 409


async def test_only_owners_and_admins_invite(client, account):
    email = new_email()
    invitation = await invite(client, account, email)
    session = await (
        await client.post(
            "/api/invitations/accept",
            json={"token": invitation["token"], "email": email, "password": PASSWORD},
        )
    ).json()
    member = {"Authorization": f"Bearer {session['access_token']}"}
    for method, path, body in (
        ("POST", "/api/invitations", {"email": new_email()}),
        ("GET", "/api/invitations", None),
        ("DELETE", f"/api/invitations/{invitation['id']}", None),
    ):
        response = await client.request(method, path, json=body, headers=member)
        assert response.status == 403, (method, path)
        assert_error(await response.json(), "FORBIDDEN")
    listed = await (await client.get("/api/invitations", headers=account.headers)).json()
    assert len(listed["invitations"]) == 1


async def test_revoking_an_invitation(client, account):
    email = new_email()
    invitation = await invite(client, account, email)
    other = await signup(client)
    foreign = await client.delete(f"/api/invitations/{invitation['id']}", headers=other.headers)
    assert foreign.status == 404  # another company's invitation is not found

    revoked = await client.delete(f"/api/invitations/{invitation['id']}", headers=account.headers)
    assert revoked.status == 200
    assert await revoked.json() == {"id": invitation["id"], "revoked": True}
    listed = await (await client.get("/api/invitations", headers=account.headers)).json()
    assert listed["invitations"] == []
    response = await client.post(
        "/api/invitations/accept",
        json={"token": invitation["token"], "email": email, "password": PASSWORD},
    )
    assert response.status == 404
    again = await client.delete(f"/api/invitations/{invitation['id']}", headers=account.headers)
    assert again.status == 404

    # The address can be invited again; an accepted invitation cannot be revoked.
    fresh = await invite(client, account, email)
    await client.post(
        "/api/invitations/accept",
        json={"token": fresh["token"], "email": email, "password": PASSWORD},
    )
    response = await client.delete(f"/api/invitations/{fresh['id']}", headers=account.headers)
    assert response.status == 409
    assert_error(await response.json(), "CONFLICT")


async def test_invitations_refuse_taken_and_invited_addresses(client, account):
    email = new_email()
    await invite(client, account, email)
    for taken in (email.upper(), account.email):
        response = await client.post(
            "/api/invitations", json={"email": taken}, headers=account.headers
        )
        assert response.status == 409, taken
        assert_error(await response.json(), "CONFLICT")
    bad = await client.post(
        "/api/invitations", json={"email": new_email(), "role": "owner"}, headers=account.headers
    )
    assert bad.status == 400
    assert "role" in (await bad.json())["details"]["fields"]
