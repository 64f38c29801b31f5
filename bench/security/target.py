"""What every check works on: a hub on a real port (`Target`), its answers
(`Reply`), a check's outcome (`Result`), and the clients that reach it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import orjson
import socketio
from aiohttp import web
from aiohttp.test_utils import TestClient

from fakes.livekit import FakeLiveKit
from fakes.serve import served
from hub.config import Settings
from hub.services import SERVICES

ORIGIN = "https://shop.example.com"


class SetupError(Exception):
    """The suite could not build what it attacks: a bug in the suite or the hub."""


@dataclass
class Result:
    """What one check found: failures (an empty list is a pass) and notes."""

    name: str
    findings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checked: int = 0  # attacks made

    def fail(self, finding: str) -> None:
        self.findings.append(finding)

    def note(self, note: str) -> None:
        self.notes.append(note)

    def count(self, attacks: int = 1) -> None:
        self.checked += attacks

    @property
    def ok(self) -> bool:
        return not self.findings

    def report(self) -> str:
        lines = [f"{self.name}: {'ok' if self.ok else 'FAILED'} ({self.checked} attacks)"]
        lines += [f"  ! {finding}" for finding in self.findings]
        lines += [f"  - {note}" for note in self.notes]
        return "\n".join(lines)


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]

    @property
    def json(self) -> Any:
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def is_error(self, status: int, code: str | None = None) -> bool:
        """The standard error body with this status (and code)."""
        body = self.json
        return (
            self.status == status
            and isinstance(body, dict)
            and set(body) == {"error", "code", "details"}
            and isinstance(body["error"], str)
            and isinstance(body["details"], dict)
            and (code is None or body["code"] == code)
        )


@dataclass
class Target:
    """A hub on a real port: its URL, settings (with the JWT secret, to mint
    tokens no outsider could), its aiohttp app, and an HTTP session."""

    url: str
    app: web.Application
    session: aiohttp.ClientSession

    @classmethod
    def of(cls, client: TestClient) -> Target:
        """The hub behind an aiohttp TestClient (the tests' and benchmarks' hubs)."""
        return cls(str(client.make_url("")).rstrip("/"), client.server.app, client.session)

    @property
    def settings(self) -> Settings:
        return self.app[SERVICES].settings

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: Any = None,
        raw: bytes | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        headers = dict(headers or {})
        if json is not None:
            raw = orjson.dumps(json)
            headers.setdefault("Content-Type", "application/json")
        async with self.session.request(
            method,
            self.url + path,
            data=raw if raw is not None else data,
            params=params,
            headers=headers,
            allow_redirects=False,
        ) as response:
            return Reply(response.status, await response.read(), dict(response.headers))

    async def healthy(self) -> bool:
        reply = await self.request("GET", "/healthz")
        return reply.status == 200

    async def connect_db(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.settings.database_url)


@asynccontextmanager
async def livekit_stand_in(bounded: bool = True) -> AsyncIterator[dict[str, Any]]:
    """Settings for a hub whose voice routes work: LiveKit's server API played
    by fakes/livekit.py's stand-in (no LiveKit server runs here), so they are
    attacked for real rather than answering 503."""
    async with served(FakeLiveKit()) as livekit:
        yield livekit.settings()


async def connect_socket(
    target: Target, namespace: str, token: str, origin: str | None = ORIGIN
) -> tuple[socketio.AsyncClient | None, dict | None]:
    """A Socket.IO connection to `namespace` with `token` (the official
    client, over WebSocket): (the client, None) if it connected, else (None,
    the error `connect_error` carried, which should be the standard one)."""
    client = socketio.AsyncClient(reconnection=False)
    errors: list[Any] = []
    client.on("connect_error", errors.append, namespace=namespace)
    try:
        await client.connect(
            target.url,
            namespaces=[namespace],
            auth={"token": token},
            headers={"Origin": origin} if origin else {},
            transports=["websocket"],
            wait_timeout=10,
        )
    except socketio.exceptions.ConnectionError:
        data = errors[0].get("data") if errors and isinstance(errors[0], dict) else None
        return None, data if isinstance(data, dict) else {"unexpected": errors}
    return client, None
