"""Publishable-key and conversation-token misuse, over REST and the widget socket.

A publishable key is public by design (it sits in a web page): what it must
not do is work from a page its owner did not allow, keep working once
revoked, speak for another agent, or open another company's or another
agent's conversations. A conversation token grants one conversation, reached
through its own agent's key. Each misuse must be refused with the standard
error, and none may change a row.
"""

from __future__ import annotations

import time
from typing import Any

import jwt

from bench.security.rows import changes, snapshot
from bench.security.target import ORIGIN, Reply, Result, Target, connect_socket
from bench.security.tenants import Factory, Tenant, build_tenant
from hub.visitors import CONVERSATION_AUDIENCE

# Origins a key allowing only https://shop.example.com must refuse.
FOREIGN_ORIGINS = [
    "https://evil.example.net",
    "https://shop.example.com.evil.net",
    "https://evil.net/https://shop.example.com",
    "http://shop.example.com",
    "https://shop.example.com:8443",
    "https://sub.shop.example.com",
    "null",
    "file://",
    "https://shop.example.co",
]
# Origins it must still accept: the same origin spelled differently.
SAME_ORIGINS = ["https://SHOP.example.com", "https://shop.example.com:443"]


def conversation_token(target: Target, tenant: Tenant, **claims: Any) -> str:
    now = int(time.time())
    payload = {
        "aud": CONVERSATION_AUDIENCE,
        "sub": tenant.conversation.id,
        "company_id": tenant.company_id,
        "agent_id": tenant.agent.id,
        "key_id": tenant.key.id,
        "exp": now + 600,
        **claims,
    }
    return jwt.encode(payload, target.settings.jwt_secret, "HS256")


class KeyAttacks:
    def __init__(self, target: Target, result: Result) -> None:
        self.target, self.result = target, result

    def expect(self, what: str, reply: Reply, status: int, code: str) -> None:
        if not reply.is_error(status, code):
            self.result.fail(
                f"{what}: {reply.status} {reply.text[:200]} (expected {status} {code})"
            )
        self.result.count()

    def rest(self, key: str, conversation: str, token: str | None, origin: str | None):
        """Every public route a key opens, with this key, token and origin."""
        headers = {"Authorization": f"Bearer {key}"}
        if origin is not None:
            headers["Origin"] = origin
        if token is not None:
            headers["X-Conversation-Token"] = token
        return {
            "profile": lambda agent: self.target.request(
                "GET", f"/public/agents/{agent}", headers=headers
            ),
            "start": lambda agent: self.target.request(
                "POST", "/public/conversations", json={"agent_id": agent}, headers=headers
            ),
            "history": lambda _: self.target.request(
                "GET", f"/public/conversations/{conversation}/messages", headers=headers
            ),
            "send": lambda _: self.target.request(
                "POST",
                f"/public/conversations/{conversation}/messages",
                json={"content": "misuse"},
                headers=headers,
            ),
            "rate": lambda _: self.target.request(
                "POST",
                f"/public/conversations/{conversation}/rating",
                json={"rating": 1},
                headers=headers,
            ),
        }

    async def all_refused(
        self,
        what: str,
        agent: str,
        key: str,
        conversation: str,
        token: str | None,
        origin: str | None,
        status: int,
        code: str,
        routes: tuple[str, ...] = ("profile", "start", "history", "send", "rate"),
    ) -> None:
        calls = self.rest(key, conversation, token, origin)
        for name in routes:
            self.expect(f"{what}: {name}", await calls[name](agent), status, code)

    async def socket_refused(self, what: str, token: str, origin: str, code: str) -> None:
        client, refusal = await connect_socket(self.target, "/widget", token, origin)
        if client is not None:
            await client.disconnect()
            self.result.fail(f"{what} on /widget: connected (expected {code})")
        elif refusal.get("code") != code:
            self.result.fail(f"{what} on /widget: {refusal} (expected {code})")
        self.result.count()


async def run(target: Target, bounded: bool = True) -> Result:
    """Every misuse once (the bounded version is the whole check)."""
    result = Result("publishable keys")
    attacks = KeyAttacks(target, result)
    victim = await build_tenant(target, "Victim", settle=False)
    attacker = await build_tenant(target, "Attacker", settle=False)
    # A second agent of the victim's, with its own key and conversation.
    make = Factory(target, victim)
    second_agent = await make.agent()
    other_conversation = await make.conversation(await make.key(second_agent.id))
    # A key the victim revokes, and a conversation started with it before.
    revoked = await make.key()
    before_revoke = await make.conversation(revoked)
    await target.request(
        "DELETE", f"/api/agents/{victim.agent.id}/keys/{revoked.id}", headers=victim.headers
    )
    before = await snapshot(target, victim.company_id)
    key, conversation = victim.key.extra["key"], victim.conversation.id
    token = victim.conversation.extra["token"]

    # Controls: the right key from the right origin works, spelled either way.
    for origin in [ORIGIN, *SAME_ORIGINS]:
        calls = attacks.rest(key, conversation, token, origin)
        reply = await calls["history"](victim.agent.id)
        if reply.status != 200:
            result.fail(f"control: history from {origin} → {reply.status} {reply.text[:200]}")

    for origin in FOREIGN_ORIGINS:
        await attacks.all_refused(
            f"the key from {origin}",
            victim.agent.id,
            key,
            conversation,
            token,
            origin,
            403,
            "ORIGIN_NOT_ALLOWED",
        )
        await attacks.socket_refused(
            f"the token from {origin}", token, origin, "ORIGIN_NOT_ALLOWED"
        )

    await attacks.all_refused(
        "a revoked key",
        victim.agent.id,
        revoked.extra["key"],
        before_revoke.id,
        before_revoke.extra["token"],
        ORIGIN,
        401,
        "INVALID_KEY",
    )
    await attacks.socket_refused(
        "a conversation token of a revoked key", before_revoke.extra["token"], ORIGIN, "INVALID_KEY"
    )
    await attacks.all_refused(
        "a made-up key",
        victim.agent.id,
        "pk_" + "A" * 43,
        conversation,
        token,
        ORIGIN,
        401,
        "INVALID_KEY",
    )
    # One agent's key for another agent of the same company.
    await attacks.all_refused(
        "agent A's key on agent B's conversation (with B's token)",
        second_agent.id,
        key,
        other_conversation.id,
        other_conversation.extra["token"],
        ORIGIN,
        404,
        "NOT_FOUND",
    )
    # A conversation token replayed against another conversation of the same agent.
    await attacks.all_refused(
        "conversation 1's token on conversation 2",
        victim.agent.id,
        key,
        before_revoke.id,
        token,
        ORIGIN,
        404,
        "NOT_FOUND",
        routes=("history", "send", "rate"),
    )
    # Company A's key against company B's agent and conversation (B's own token).
    await attacks.all_refused(
        "the attacker's key on the victim's agent and conversation",
        victim.agent.id,
        attacker.key.extra["key"],
        conversation,
        token,
        ORIGIN,
        404,
        "NOT_FOUND",
    )
    forged = {
        "a conversation token signed with another secret": jwt.encode(
            {"aud": CONVERSATION_AUDIENCE, "sub": conversation, "exp": int(time.time()) + 60},
            "not-the-secret" * 4,
            "HS256",
        ),
        "an expired conversation token": conversation_token(
            target, victim, exp=int(time.time()) - 60
        ),
        "a staff token as a conversation token": victim.token,
        "an unsigned conversation token": jwt.encode(
            {"aud": CONVERSATION_AUDIENCE, "sub": conversation}, None, "none"
        ),
    }
    for what, bad in forged.items():
        await attacks.all_refused(
            what,
            victim.agent.id,
            key,
            conversation,
            bad,
            ORIGIN,
            401,
            "INVALID_TOKEN",
            routes=("history", "send", "rate"),
        )
        await attacks.socket_refused(what, bad, ORIGIN, "INVALID_TOKEN")

    for change in changes(before, await snapshot(target, victim.company_id)):
        result.fail(f"the victim's rows changed: {change}")
    if not await target.healthy():
        result.fail("the hub is not healthy after the key attacks")
    result.note(
        f"{len(FOREIGN_ORIGINS)} foreign origins refused on REST and /widget; without an "
        "Origin header a key works from anywhere (non-browsers can claim any origin)"
    )
    return result
