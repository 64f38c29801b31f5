"""The hub as shipped, driven from outside: bench/shipped.py's `Served` (a
`python -m hub serve` started as the README's quick start does), and the
clients a customer, a visitor, a phone carrier or a member of staff would be
— HTTP, WebSocket and Socket.IO against a URL. Nothing here imports the
hub's app: what runs is the process."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import ClientWebSocketResponse

from tests.helpers import wait_for

POLICY = (
    "Our refund policy: customers may return any product within thirty days "
    "of delivery for a full refund.\n"
)


# -- REST ---------------------------------------------------------------------------


@dataclass
class Staff:
    token: str
    company_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Api:
    """JSON over HTTP to a running hub."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")
        self.session = aiohttp.ClientSession()

    async def close(self) -> None:
        await self.session.close()

    async def request(
        self, method: str, path: str, *, expect: int | tuple[int, ...] = 200, **kwargs
    ) -> Any:
        async with self.session.request(method, self.base + path, **kwargs) as response:
            text = await response.text()
            expected = (expect,) if isinstance(expect, int) else expect
            assert response.status in expected, (method, path, response.status, text)
            if response.content_type == "application/json":
                return json.loads(text)
            return text

    async def signup(self, company: str = "Acme") -> Staff:
        body = await self.request(
            "POST",
            "/api/auth/signup",
            json={
                "email": f"owner-{uuid.uuid4().hex[:10]}@example.com",
                "password": "correct horse battery",
                "company_name": company,
            },
            expect=201,
        )
        return Staff(body["access_token"], body["company"]["id"])

    async def login(self, email: str, password: str) -> Staff:
        body = await self.request(
            "POST", "/api/auth/login", json={"email": email, "password": password}
        )
        return Staff(body["access_token"], body["company"]["id"])

    async def create_agent(self, staff: Staff, **fields) -> dict:
        return await self.request(
            "POST", "/api/agents", json=fields, headers=staff.headers, expect=201
        )

    async def add_document(
        self, staff: Staff, agent_id: str, text: str, filename: str, within: float = 120
    ) -> dict:
        """Upload a knowledge document and wait until it is processed."""
        form = aiohttp.FormData()
        form.add_field("file", text.encode(), filename=filename)
        form.add_field("agent_id", agent_id)
        uploaded = await self.request(
            "POST", "/api/knowledge-base/upload", data=form, headers=staff.headers, expect=201
        )

        async def done():
            document = await self.request(
                "GET", f"/api/knowledge-base/{uploaded['id']}", headers=staff.headers
            )
            return document if document["status"] in ("processed", "failed") else None

        document = await wait_for(done, within=within, every=0.3)
        assert document["status"] == "processed", document
        return document

    async def publishable_key(self, staff: Staff, agent_id: str, origins=("*",)) -> str:
        key = await self.request(
            "POST",
            f"/api/agents/{agent_id}/keys",
            json={"allowed_origins": list(origins)},
            headers=staff.headers,
            expect=201,
        )
        return key["key"]

    async def start_conversation(
        self, key: str, agent_id: str, channel: str = "chat", origin: str | None = None
    ) -> dict:
        headers = {"Authorization": f"Bearer {key}"}
        if origin:
            headers["Origin"] = origin
        return await self.request(
            "POST",
            "/public/conversations",
            json={"agent_id": agent_id, "channel": channel},
            headers=headers,
            expect=201,
        )

    async def conversation(self, staff: Staff, conversation_id: str) -> dict:
        return await self.request(
            "GET", f"/api/conversations/{conversation_id}", headers=staff.headers
        )

    async def conversations(self, staff: Staff, **query: str) -> list[dict]:
        body = await self.request(
            "GET", "/api/conversations", params={"limit": "50", **query}, headers=staff.headers
        )
        return body["conversations"]

    async def messages(self, staff: Staff, conversation_id: str) -> list[dict]:
        body = await self.request(
            "GET",
            f"/api/conversations/{conversation_id}/messages",
            params={"limit": "200"},
            headers=staff.headers,
        )
        return body["messages"]

    async def reply_stored(
        self, staff: Staff, conversation_id: str, line=None, within: float = 120
    ) -> list[dict]:
        """Wait for an agent message answering the caller; all the conversation's
        messages then. With the call's `line` (fakes/voice_line.Line), a call
        that ends first fails at once, with how it ended."""

        async def replied():
            if line is not None and line.closed.is_set():
                raise AssertionError(
                    f"the call ended: {line.close_code} {line.close_reason} {line.frames}"
                )
            stored = await self.messages(staff, conversation_id)
            return stored if any(m["reply_to"] for m in stored) else None

        return await wait_for(replied, within=within)

    async def ended(self, staff: Staff, conversation_id: str, within: float = 30) -> dict:
        async def status():
            found = await self.conversation(staff, conversation_id)
            return found if found["status"] == "ended" else None

        return await wait_for(status, within=within)

    async def ws(self, path: str, **kwargs) -> ClientWebSocketResponse:
        url = path if "://" in path else self.base.replace("http", "ws", 1) + path
        return await self.session.ws_connect(url, **kwargs)


async def marked(line, transcript: bool = False) -> bool:
    """A call's line (fakes/voice_line.Line): the agent's speech ended with a
    mark, which the line echoed, and (browser transport) its transcript came."""
    roles = {t.get("role") for t in line.of_type("transcript")}
    return bool(line.marks) and (not transcript or "agent" in roles)
