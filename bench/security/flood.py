"""Socket.IO floods, with the official python-socketio client and raw Engine.IO.

The hub runs with small limits (FLOOD_SETTINGS) so that a flood is a few
hundred events. Each flood must be refused with the standard error in the
ack (or, for connections, in `connect_error`), store nothing beyond the
limit, and leave the hub healthy: `/healthz` answers and a fresh visitor can
still connect and talk.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import socketio

from bench.security.target import Result, SetupError, Target, connect_socket
from bench.security.tenants import Tenant, build_tenant

MESSAGES_PER_MINUTE = 10
CONNECTS_PER_MINUTE = 40
FLOOD_SETTINGS = {
    "socket_messages_per_minute": MESSAGES_PER_MINUTE,
    "socket_connects_per_minute": CONNECTS_PER_MINUTE,
}


@asynccontextmanager
async def environment(bounded: bool = True) -> AsyncIterator[dict[str, Any]]:
    yield dict(FLOOD_SETTINGS)


async def widget(target: Target, token: str) -> socketio.AsyncClient:
    client, refusal = await connect_socket(target, "/widget", token)
    if client is None:
        raise SetupError(f"a visitor could not connect: {refusal}")
    return client


async def call(client: socketio.AsyncClient, event: str, data: Any) -> Any:
    return await client.call(event, data, namespace="/widget", timeout=10)


def refused(ack: Any, code: str) -> bool:
    return (
        isinstance(ack, dict)
        and ack.get("ok") is False
        and ack.get("code") == code
        and {"error", "code", "details"} <= set(ack)
    )


async def stored_messages(target: Target, tenant: Tenant, conversation: str) -> int:
    reply = await target.request(
        "GET",
        f"/api/conversations/{conversation}/messages",
        params={"limit": "200"},
        headers=tenant.headers,
    )
    return sum(1 for m in reply.json["messages"] if m["sender_type"] == "user")


async def message_rate(target: Target, tenant: Tenant, result: Result, burst: int) -> None:
    """One conversation, several connections: the limit is the conversation's."""
    started = await target.request(
        "POST", "/public/conversations", json={"agent_id": tenant.agent.id}, headers=tenant.public
    )
    conversation = started.json
    clients = [await widget(target, conversation["token"]) for _ in range(3)]
    try:
        acks = await asyncio.gather(
            *(
                call(clients[i % len(clients)], "message:send", {"content": f"flood {i}"})
                for i in range(burst)
            )
        )
    finally:
        for client in clients:
            await client.disconnect()
    accepted = sum(1 for a in acks if a.get("ok"))
    limited = sum(1 for a in acks if refused(a, "RATE_LIMITED"))
    result.count(burst)
    if accepted + limited != burst:
        odd = [a for a in acks if not a.get("ok") and not refused(a, "RATE_LIMITED")]
        result.fail(f"message flood: unexpected acks {odd[:3]}")
    if accepted > MESSAGES_PER_MINUTE:
        result.fail(
            f"message flood over 3 connections of one conversation: {accepted} of {burst} "
            f"accepted (limit {MESSAGES_PER_MINUTE} a minute)"
        )
    stored = await stored_messages(target, tenant, conversation["id"])
    if stored != accepted:
        result.fail(f"message flood: {accepted} acknowledged but {stored} stored")
    result.note(f"message flood: {accepted} of {burst} accepted, the rest RATE_LIMITED")


async def event_floods(target: Target, tenant: Tenant, result: Result, burst: int) -> None:
    """Events other than messages (typing, resume, made-up names) are bounded too."""
    for event, payload in (
        ("typing", {"typing": True}),
        ("conversation:resume", {"after_seq": 0}),
        ("made:up", {}),
    ):
        started = await target.request(
            "POST",
            "/public/conversations",
            json={"agent_id": tenant.agent.id},
            headers=tenant.public,
        )
        client = await widget(target, started.json["token"])
        try:
            acks = await asyncio.gather(*(call(client, event, payload) for _ in range(burst)))
        finally:
            await client.disconnect()
        limited = sum(1 for a in acks if refused(a, "RATE_LIMITED"))
        result.count(burst)
        if not limited:
            result.fail(f"{burst} {event!r} events on one connection: none refused")
        else:
            result.note(f"{event!r} flood: {burst - limited} of {burst} answered")


async def oversized(target: Target, tenant: Tenant, result: Result) -> None:
    started = await target.request(
        "POST", "/public/conversations", json={"agent_id": tenant.agent.id}, headers=tenant.public
    )
    conversation = started.json
    client = await widget(target, conversation["token"])
    try:
        for what, payload in (
            ("content over 4000 characters", {"content": "x" * 4001}),
            ("200 attachments", {"content": "x", "attachments": [{}] * 200}),
            ("a deeply nested payload", {"content": "x", "n": _nested(200)}),
        ):
            ack = await call(client, "message:send", payload)
            if not refused(ack, "VALIDATION_ERROR"):
                result.fail(f"{what}: {str(ack)[:200]} (expected VALIDATION_ERROR)")
            result.count()
    finally:
        await client.disconnect()
    # A frame beyond the Engine.IO buffer (64 KB): the connection is dropped.
    client = await widget(target, conversation["token"])
    try:
        await client.emit("message:send", {"content": "y" * 200_000}, namespace="/widget")
        for _ in range(50):
            if not client.connected:
                break
            await asyncio.sleep(0.1)
        if client.connected:
            result.fail("a 200 KB frame: the connection stayed open")
    finally:
        if client.connected:
            await client.disconnect()
    result.count()
    if await stored_messages(target, tenant, conversation["id"]):
        result.fail("an oversized message was stored")


def _nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = {"n": value}
    return value


async def connection_attempts(target: Target, tenant: Tenant, result: Result, burst: int) -> None:
    """Many connection attempts from one address, good tokens and bad."""
    outcomes: list[str] = []

    async def attempt(token: str) -> None:
        client, refusal = await connect_socket(target, "/widget", token)
        if client is not None:
            outcomes.append("connected")
            await client.disconnect()
        else:
            outcomes.append(refusal.get("code") or f"no standard error: {refusal}")

    tokens = [tenant.conversation.extra["token"], "not-a-token"]
    for start in range(0, burst, 20):
        await asyncio.gather(
            *(attempt(tokens[i % 2]) for i in range(start, min(burst, start + 20)))
        )
    limited = outcomes.count("RATE_LIMITED")
    result.count(burst)
    odd = [o for o in outcomes if o not in ("connected", "INVALID_TOKEN", "RATE_LIMITED")]
    if odd:
        result.fail(f"connection attempts: unexpected outcomes {odd[:3]}")
    # Fixed one-minute windows: a burst may span two, so up to twice the limit pass.
    if not limited or burst - limited > 2 * CONNECTS_PER_MINUTE:
        result.fail(
            f"{burst} connection attempts from one address: {burst - limited} went through "
            f"(limit {CONNECTS_PER_MINUTE} a minute)"
        )
    result.note(f"connection attempts: {burst - limited} of {burst} let through")


async def raw_handshakes(target: Target, result: Result, burst: int) -> None:
    """Engine.IO handshakes that never join a namespace: sessions the server
    must carry until they time out."""
    async with aiohttp.ClientSession() as session:

        async def handshake() -> int:
            async with session.get(
                f"{target.url}/socket.io/", params={"EIO": "4", "transport": "polling"}
            ) as response:
                await response.read()
                return response.status

        statuses = []
        for start in range(0, burst, 50):
            statuses += await asyncio.gather(*(handshake() for _ in range(min(50, burst - start))))
    result.count(burst)
    bad = [s for s in statuses if s >= 500]
    if bad:
        result.fail(f"raw Engine.IO handshakes: {len(bad)} answered 5xx")
    result.note(f"{burst} raw Engine.IO handshakes: statuses {sorted(set(statuses))}")


async def run(target: Target, bounded: bool = True) -> Result:
    result = Result("Socket.IO floods")
    settings = target.settings
    for name, value in FLOOD_SETTINGS.items():
        if getattr(settings, name, None) != value:
            raise AssertionError(f"run the flood check with {FLOOD_SETTINGS} (flood.environment)")
    tenant = await build_tenant(target, f"Flood{uuid.uuid4().hex[:4]}", settle=False)
    burst = 60 if bounded else 400
    await message_rate(target, tenant, result, burst)
    await event_floods(target, tenant, result, burst)
    await oversized(target, tenant, result)
    await raw_handshakes(target, result, burst * (2 if bounded else 10))
    # Last: it spends this address's connection budget for the minute.
    await connection_attempts(target, tenant, result, 3 * CONNECTS_PER_MINUTE)
    if not await target.healthy():
        result.fail("the hub is not healthy after the floods")
    return result
