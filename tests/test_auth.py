"""Built-in accounts and JWT verification (HS256 and JWKS)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

import asyncpg
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from hub.auth import mint_token
from hub.services import SERVICES
from tests.helpers import assert_error, signup, wait_for
from tests.supabase import supabase_token


async def companies_named(database_url: str, name: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval("SELECT count(*) FROM companies WHERE name = $1", name)
    finally:
        await conn.close()


async def test_signup_login_me(client):
    email = f"Jane.{uuid.uuid4().hex[:8]}@Example.com"
    response = await client.post(
        "/api/auth/signup",
        json={"email": email, "password": "long enough pw", "company_name": "Jane Co"},
    )
    assert response.status == 201
    session = await response.json()
    assert session["token_type"] == "bearer" and session["expires_in"] > 0
    assert session["user"]["role"] == "owner"
    assert session["user"]["company_id"] == session["company"]["id"]
    assert "password_hash" not in session["user"]

    login = await client.post(
        "/api/auth/login", json={"email": email.lower(), "password": "long enough pw"}
    )
    assert login.status == 200
    logged_in = await login.json()
    assert logged_in["user"]["id"] == session["user"]["id"]

    me = await client.get(
        "/api/auth/me", headers={"Authorization": f"Bearer {logged_in['access_token']}"}
    )
    body = await me.json()
    assert body["user"]["email"].lower() == email.lower()
    assert body["company"]["name"] == "Jane Co"


async def test_duplicate_email_is_a_conflict_and_creates_no_company(client, database_url):
    account = await signup(client)
    company = f"Dup {uuid.uuid4().hex[:6]}"
    response = await client.post(
        "/api/auth/signup",
        json={
            "email": account.email.upper(),
            "password": "long enough pw",
            "company_name": company,
        },
    )
    assert response.status == 409
    assert_error(await response.json(), "CONFLICT")
    assert await companies_named(database_url, company) == 0


@pytest.mark.parametrize(
    "body, field",
    [
        ({"email": "not-an-email", "password": "long enough", "company_name": "X"}, "email"),
        ({"email": "a@example.com", "password": "short", "company_name": "X"}, "password"),
        ({"email": "a@example.com", "password": "long enough", "company_name": ""}, "company_name"),
        ({"email": "a@example.com", "password": "long enough"}, "company_name"),
        ({"email": "a@example.com", "password": "long enough", "company_name": "X", "x": 1}, "x"),
    ],
)
async def test_signup_validation(client, database_url, body, field):
    response = await client.post("/api/auth/signup", json=body)
    assert response.status == 400
    payload = await response.json()
    assert_error(payload, "VALIDATION_ERROR")
    assert field in payload["details"]["fields"]
    assert await companies_named(database_url, "X") == 0


async def test_login_failures_do_not_say_which_part_was_wrong(client):
    account = await signup(client)
    for body in (
        {"email": account.email, "password": "wrong password"},
        {"email": "nobody-" + account.email, "password": "correct horse battery"},
    ):
        response = await client.post("/api/auth/login", json=body)
        assert response.status == 401
        payload = await response.json()
        assert_error(payload, "INVALID_CREDENTIALS")
        assert payload["error"] == "Wrong email or password"


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(account, **changes) -> dict:
    now = int(time.time())
    claims = {
        "sub": account.user_id,
        "email": account.email,
        "role": "authenticated",
        "aud": "authenticated",
        "exp": now + 600,
        "iat": now,
        "app_metadata": {"company_id": account.company_id, "role": "owner"},
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


async def test_bad_tokens_are_refused(client, account, base_settings):
    secret = base_settings.ensure_jwt_secret().jwt_secret
    now = int(time.time())
    unsigned = _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(_claims(account)) + "."
    cases = {
        "missing": None,
        "not bearer": f"Basic {account.token}",
        "malformed": "Bearer not.a.jwt",
        "garbage": "Bearer abc",
        "expired": "Bearer " + jwt.encode(_claims(account, exp=now - 120), secret, "HS256"),
        "wrong signature": "Bearer " + jwt.encode(_claims(account), "x" * 48, "HS256"),
        "alg none": f"Bearer {unsigned}",
        "wrong audience": "Bearer "
        + jwt.encode(_claims(account, aud="someone-else"), secret, "HS256"),
        "no audience": "Bearer " + jwt.encode(_claims(account, aud=None), secret, "HS256"),
        "no expiry": "Bearer " + jwt.encode(_claims(account, exp=None), secret, "HS256"),
        "sub not uuid": "Bearer " + jwt.encode(_claims(account, sub="user-1"), secret, "HS256"),
    }
    for name, header in cases.items():
        headers = {"Authorization": header} if header else {}
        response = await client.get("/api/agents", headers=headers)
        assert response.status == 401, name
        assert response.headers.get("WWW-Authenticate") == "Bearer", name
        body = await response.json()
        assert body["code"] in ("UNAUTHORIZED", "INVALID_TOKEN"), name
        assert_error(body, body["code"])


async def test_supabase_style_token_for_an_unseen_company(client, base_settings):
    """An external identity provider's token names a company the hub has not seen:
    the company gets its row and the user can work in it."""
    secret = base_settings.ensure_jwt_secret().jwt_secret
    company_id, user_id = str(uuid.uuid4()), str(uuid.uuid4())
    token = jwt.encode(
        {
            "sub": user_id,
            "aud": "authenticated",
            "role": "authenticated",
            "exp": int(time.time()) + 600,
            "app_metadata": {"company_id": company_id},
        },
        secret,
        "HS256",
    )
    headers = {"Authorization": f"Bearer {token}"}
    created = await client.post("/api/agents", json={"name": "Ext"}, headers=headers)
    assert created.status == 201
    assert (await created.json())["company_id"] == company_id
    me = await (await client.get("/api/auth/me", headers=headers)).json()
    assert me["user"]["role"] == "member" and me["user"]["id"] == user_id
    # Members may not delete agents.
    agent_id = (await created.json())["id"]
    assert (await client.delete(f"/api/agents/{agent_id}", headers=headers)).status == 403


async def test_supabase_token_takes_company_and_role_from_the_users_table(
    client, base_settings, database_url
):
    """A Supabase access token names no company: its `sub` is a hub user's id
    (a user moved over from the seed with its id) or the external id linked to
    a hub user, and that user's company and role count, not the token's role."""
    secret = base_settings.ensure_jwt_secret().jwt_secret
    owner = await signup(client)
    moved, linked_sub = uuid.uuid4(), uuid.uuid4()
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO users (id, company_id, email, role) VALUES ($1, $2, $3, 'admin')",
            moved,
            uuid.UUID(owner.company_id),
            f"moved-{moved.hex[:8]}@example.com",
        )
        linked_id = await conn.fetchval(
            """INSERT INTO users (company_id, email, role, external_id)
               VALUES ($1, $2, 'member', $3) RETURNING id""",
            uuid.UUID(owner.company_id),
            f"linked-{linked_sub.hex[:8]}@example.com",
            linked_sub,
        )
    finally:
        await conn.close()
    for sub, user_id, role in ((moved, moved, "admin"), (linked_sub, linked_id, "member")):
        headers = {"Authorization": f"Bearer {supabase_token(secret, str(sub), 'x@example.com')}"}
        me = await client.get("/api/auth/me", headers=headers)
        assert me.status == 200, await me.text()
        body = await me.json()
        assert body["user"]["id"] == str(user_id) and body["user"]["role"] == role
        assert body["company"]["id"] == owner.company_id
        created = await client.post("/api/agents", json={"name": "Moved"}, headers=headers)
        assert (await created.json())["company_id"] == owner.company_id
        # Audit and rate limits know the hub user, not the provider's id.
        audit = await client.get("/api/audit-log", headers=owner.headers)
        assert (await audit.json())["entries"][0]["user_id"] == str(user_id)
    deleted = await client.delete(
        f"/api/agents/{(await created.json())['id']}",
        headers={"Authorization": f"Bearer {supabase_token(secret, str(linked_sub), None)}"},
    )
    assert deleted.status == 403  # the row says member, whatever the token says


async def test_token_without_company_for_an_unknown_user_is_refused(client, base_settings):
    secret = base_settings.ensure_jwt_secret().jwt_secret
    for token in (
        supabase_token(secret, str(uuid.uuid4()), "nobody@example.com"),
        jwt.encode(
            {"sub": str(uuid.uuid4()), "aud": "authenticated", "exp": int(time.time()) + 60},
            secret,
            "HS256",
        ),
    ):
        response = await client.get("/api/agents", headers={"Authorization": f"Bearer {token}"})
        assert response.status == 401
        assert response.headers.get("WWW-Authenticate") == "Bearer"
        body = await response.json()
        assert_error(body, "INVALID_TOKEN")
        assert "no user of this hub" in body["error"]


@pytest.fixture
async def jwks_server(aiohttp_server):
    """A local JWKS endpoint serving one RSA and one EC public key."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    keys = []
    for kid, key, alg in (("rsa-1", rsa_key, "RS256"), ("ec-1", ec_key, "ES256")):
        jwk = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(key.public_key()))
        keys.append({**jwk, "kid": kid, "alg": alg, "use": "sig"})
    hits = []

    async def serve_keys(request):
        hits.append(request.path)
        return web.json_response({"keys": keys})

    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", serve_keys)
    server = await aiohttp_server(app)
    return server, {"rsa-1": rsa_key, "ec-1": ec_key}, hits


async def test_jwks_tokens(make_client, jwks_server):
    server, keys, hits = jwks_server
    hub = await make_client(
        jwt_jwks_url=str(server.make_url("/.well-known/jwks.json")), jwt_issuer="https://idp.test/"
    )
    company_id = str(uuid.uuid4())

    def token(kid: str, alg: str, key, **changes) -> str:
        claims = {
            "sub": str(uuid.uuid4()),
            "aud": "authenticated",
            "iss": "https://idp.test/",
            "exp": int(time.time()) + 600,
            "company_id": company_id,
            "role": "admin",
            **changes,
        }
        return jwt.encode(claims, key, alg, headers={"kid": kid})

    for kid, alg in (("rsa-1", "RS256"), ("ec-1", "ES256")):
        response = await hub.get(
            "/api/agents", headers={"Authorization": f"Bearer {token(kid, alg, keys[kid])}"}
        )
        assert response.status == 200, (alg, await response.text())
    assert len(hits) == 1  # the key set is fetched once and cached

    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused = {
        "signed by another key": token("rsa-1", "RS256", stranger),
        "unknown kid": token("rsa-9", "RS256", stranger),
        "wrong issuer": token("rsa-1", "RS256", keys["rsa-1"], iss="https://evil.test/"),
        "expired": token("rsa-1", "RS256", keys["rsa-1"], exp=int(time.time()) - 120),
    }
    for name, bad in refused.items():
        response = await hub.get("/api/agents", headers={"Authorization": f"Bearer {bad}"})
        assert response.status == 401, name
        assert_error(await response.json(), "INVALID_TOKEN")

    # HS256 signed with the RSA public key as the HMAC secret: the classic
    # algorithm-confusion forgery. HS256 is only ever checked with JWT_SECRET.
    public_pem = (
        keys["rsa-1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    signing_input = (
        _b64({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"})
        + "."
        + _b64(
            {
                "sub": str(uuid.uuid4()),
                "aud": "authenticated",
                "iss": "https://idp.test/",
                "exp": int(time.time()) + 600,
                "company_id": company_id,
            }
        )
    )
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    forged = signing_input + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()
    response = await hub.get("/api/agents", headers={"Authorization": f"Bearer {forged}"})
    assert response.status == 401


async def test_minted_token_round_trips(client, account, base_settings):
    token, ttl = mint_token(
        base_settings.ensure_jwt_secret(),
        user_id=uuid.UUID(account.user_id),
        company_id=uuid.UUID(account.company_id),
        role="admin",
        email=account.email,
        ttl_seconds=120,
    )
    assert ttl == 120
    response = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert (await response.json())["user"]["id"] == account.user_id


async def test_signed_tokens_are_held_against_the_records(client, base_settings, database_url):
    """A valid signature proves who minted a token, not that its claims still
    hold: a user of one company claiming another, and the tokens of a deleted
    user or company, are refused (and the company is not brought back)."""
    settings = base_settings.ensure_jwt_secret()
    mine, theirs = await signup(client), await signup(client)

    def token_for(account, company_id: str) -> str:
        return mint_token(
            settings,
            user_id=uuid.UUID(account.user_id),
            company_id=uuid.UUID(company_id),
            role="owner",
            email=account.email,
            hub_user=True,
        )[0]

    claiming = token_for(mine, theirs.company_id)
    response = await client.get("/api/agents", headers={"Authorization": f"Bearer {claiming}"})
    assert response.status == 401
    body = await response.json()
    assert_error(body, "INVALID_TOKEN")
    assert "another company" in body["error"]

    gone_user, gone_company = await signup(client), await signup(client)
    for account in (gone_user, gone_company):  # used once: any cache has seen them
        assert (await client.get("/api/agents", headers=account.headers)).status == 200
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("DELETE FROM users WHERE id = $1", uuid.UUID(gone_user.user_id))
        await conn.execute(
            "DELETE FROM companies WHERE id = $1", uuid.UUID(gone_company.company_id)
        )
        # The hub keeps recent checks (hub/tokencache.py) until PostgreSQL's
        # notice of the change arrives, which can trail the commit's reply by
        # a moment; tests/test_token_cache.py tests that the notice drops them.
        kept = client.server.app[SERVICES].tokens

        async def dropped() -> bool:
            return not any(
                kept.get(a.headers["Authorization"][7:]) for a in (gone_user, gone_company)
            )

        await wait_for(dropped, within=10, every=0.01)
        for account in (gone_user, gone_company):
            for method, body in (("GET", None), ("POST", {"name": "After"})):
                response = await client.request(
                    method, "/api/agents", json=body, headers=account.headers
                )
                assert response.status == 401, (method, await response.text())
                assert_error(await response.json(), "INVALID_TOKEN")
        assert not await conn.fetchval(
            "SELECT count(*) FROM companies WHERE id = $1", uuid.UUID(gone_company.company_id)
        )
    finally:
        await conn.close()
