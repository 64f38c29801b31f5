"""Helpers the tests share: accounts, where screenshots go, the standard
error shape, waiting for a condition, and a recording Socket.IO client.
(Free ports: bench/cluster.py's free_port; the fake servers: fakes/.)"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import socketio
from aiohttp.test_utils import TestClient

# Screenshots of the browser tests (git-ignored).
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@dataclass
class Account:
    token: str
    user_id: str
    company_id: str
    email: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def signup(client: TestClient, company: str = "Acme") -> Account:
    email = f"owner-{uuid.uuid4().hex[:10]}@example.com"
    response = await client.post(
        "/api/auth/signup",
        json={"email": email, "password": "correct horse battery", "company_name": company},
    )
    assert response.status == 201, await response.text()
    body = await response.json()
    return Account(body["access_token"], body["user"]["id"], body["company"]["id"], email)


def assert_error(body: dict, code: str) -> None:
    assert set(body) == {"error", "code", "details"}, body
    assert body["code"] == code, body
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["details"], dict)


async def wait_for(predicate, within: float = 60.0, every: float = 0.25):
    """Until `await predicate()` is truthy (and that value); fails after `within` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await predicate()
        if value:
            return value
        assert loop.time() < deadline, f"timed out after {within} s"
        await asyncio.sleep(every)


class SocketClient:
    """python-socketio's client on one namespace, recording every event."""

    def __init__(self, namespace: str, origin: str | None = None) -> None:
        self.namespace = namespace
        self.origin = origin  # the page's, sent with every connection unless told otherwise
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: dict[str, list] = defaultdict(list)
        self.sio.on("*", self._record, namespace=namespace)

    async def _record(self, event, data=None):
        self.events[event].append(data)

    async def connect(
        self,
        hub: TestClient | str,
        token: str,
        transports=("websocket",),
        origin: str | None = None,
    ) -> None:
        """To an in-process hub (a TestClient) or a running one's URL."""
        url = hub if isinstance(hub, str) else str(hub.make_url("/"))
        origin = origin or self.origin
        await self.sio.connect(
            url,
            namespaces=[self.namespace],
            auth={"token": token},
            transports=list(transports),
            headers={"Origin": origin} if origin else {},
            wait_timeout=30,
        )

    async def call(self, event: str, data=None):
        return await self.sio.call(event, data, namespace=self.namespace, timeout=60)

    async def wait_for(self, event: str, predicate=lambda d: True, within: float = 10.0):
        async def found():  # in a list: an event's data may be falsy ({})
            return [item for item in self.events[event] if predicate(item)][:1]

        try:
            return (await wait_for(found, within=within, every=0.02))[0]
        except AssertionError:
            raise AssertionError(f"no {event} within {within} s; got {dict(self.events)}") from None

    async def close(self) -> None:
        # python-socketio's client waits out a pending long-poll (about 20 s) on a
        # polite disconnect; dropping the transport is as good for a test.
        with contextlib.suppress(Exception):
            await self.sio.eio.disconnect(abort=True)
