"""GET /api/users: the company's accounts, for the dashboard's team and audit views."""

from __future__ import annotations

from tests.helpers import assert_error, signup


async def test_lists_the_company_users_only(client, account):
    other = await signup(client, company="Other")
    response = await client.get("/api/users", headers=account.headers)
    assert response.status == 200
    users = (await response.json())["users"]
    assert [u["email"] for u in users] == [account.email]
    assert users[0]["id"] == account.user_id and users[0]["role"] == "owner"
    assert "password_hash" not in users[0]
    theirs = await (await client.get("/api/users", headers=other.headers)).json()
    assert [u["email"] for u in theirs["users"]] == [other.email]


async def test_needs_a_token(client):
    response = await client.get("/api/users")
    assert response.status == 401
    assert_error(await response.json(), "UNAUTHORIZED")
