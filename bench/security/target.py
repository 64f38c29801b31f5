"""What every check works on: a running hub, and companies filled with one of
everything, made through the public API the way a customer would make them.

A `Tenant`'s texts carry a canary (`CANARY-<label>-<hex>`), so a leak shows as
a string search; its rows can be snapshotted straight from PostgreSQL (as the
migration owner, which row-level security does not restrict) to prove that an
attack changed nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import uuid
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

from hub.config import Settings
from hub.services import SERVICES

ORIGIN = "https://shop.example.com"
PASSWORD = "correct horse battery"


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
    by the tests' stand-in (no LiveKit server runs here), so they are attacked
    for real rather than answering 503."""
    from tests.fake_livekit import FakeLiveKit

    livekit = FakeLiveKit()
    await livekit.start()
    try:
        yield livekit.settings()
    finally:
        await livekit.close()


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


def canary(label: str) -> str:
    return f"CANARY-{label}-{secrets.token_hex(4)}"


@dataclass
class Resource:
    id: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Tenant:
    """A company with one of everything, and the credentials of its owner."""

    label: str
    mark: str  # the canary in every text this tenant wrote
    token: str
    user_id: str
    company_id: str
    email: str
    agent: Resource
    key: Resource  # extra["key"]: the publishable key itself
    conversation: Resource  # extra["token"]: its conversation token
    resources: dict[str, Resource] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def public(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key.extra['key']}", "Origin": ORIGIN}

    def secrets(self) -> set[str]:
        """What must never appear in another company's answers."""
        found = {self.mark, self.company_id, self.user_id, self.email}
        for resource in self.resources.values():
            found.add(resource.id)
            found.update(v for k, v in resource.extra.items() if k in ("key", "secret", "token"))
        return found


async def expect(reply: Reply, status: int, what: str) -> Any:
    if reply.status != status:
        raise SetupError(f"{what}: expected {status}, got {reply.status}: {reply.text[:500]}")
    return reply.json


class Factory:
    """Makes fresh resources of each kind in one tenant, through the API."""

    def __init__(self, target: Target, tenant: Tenant) -> None:
        self.target, self.tenant = target, tenant

    async def _post(self, path: str, body: Any, what: str, headers=None) -> dict:
        reply = await self.target.request(
            "POST", path, json=body, headers=headers or self.tenant.headers
        )
        expected = 200 if path.endswith("/test") else 201
        return await expect(reply, expected, what)

    async def agent(self) -> Resource:
        mark = self.tenant.mark
        body = {"name": f"Agent {mark}", "system_prompt": f"Prompt {mark}", "greeting": mark}
        return Resource((await self._post("/api/agents", body, "create an agent"))["id"])

    async def key(self, agent: str | None = None) -> Resource:
        agent = agent or self.tenant.agent.id
        made = await self._post(
            f"/api/agents/{agent}/keys", {"allowed_origins": [ORIGIN]}, "create a key"
        )
        return Resource(made["id"], {"key": made["key"], "agent": agent})

    async def conversation(self, key: Resource | None = None) -> Resource:
        """A visitor's conversation, started with `key` (the tenant's own by default)."""
        key = key or self.tenant.key
        started = await self._post(
            "/public/conversations",
            {"agent_id": key.extra["agent"], "metadata": {"note": self.tenant.mark}},
            "start a conversation",
            headers={"Authorization": f"Bearer {key.extra['key']}", "Origin": ORIGIN},
        )
        return Resource(started["id"], {"token": started["token"]})

    async def message(self, conversation: str | None = None) -> Resource:
        conversation = conversation or self.tenant.conversation.id
        made = await self._post(
            f"/api/conversations/{conversation}/messages",
            {"content": f"Staff says {self.tenant.mark}"},
            "write a message",
        )
        return Resource(made["id"])

    async def contact(self) -> Resource:
        body = {
            "email": f"{uuid.uuid4().hex[:10]}@example.com",
            "first_name": self.tenant.mark,
            "metadata": {"note": self.tenant.mark},
        }
        return Resource((await self._post("/api/crm/contacts", body, "create a contact"))["id"])

    async def deal(self, contact: str | None = None) -> Resource:
        body = {"title": f"Deal {self.tenant.mark}", "value": 1200}
        if contact:
            body["contact_id"] = contact
        return Resource((await self._post("/api/crm/deals", body, "create a deal"))["id"])

    async def document(self) -> Resource:
        form = aiohttp.FormData()
        form.add_field(
            "file",
            f"# Returns\n\nRefunds take 5 days. {self.tenant.mark}\n".encode(),
            filename="returns.md",
            content_type="text/markdown",
        )
        form.add_field("title", f"Returns {self.tenant.mark}")
        reply = await self.target.request(
            "POST", "/api/knowledge-base/upload", data=form, headers=self.tenant.headers
        )
        return Resource((await expect(reply, 201, "upload a document"))["id"])

    async def workflow(self) -> Resource:
        body = {"name": f"Hook {self.tenant.mark}", "trigger_type": "webhook"}
        made = await self._post("/api/workflows", body, "create a workflow")
        return Resource(made["id"], {"secret": made["secret"]})

    async def execution(self, workflow: str | None = None) -> Resource:
        workflow = workflow or self.tenant.resources["workflow"].id
        run = await self._post(
            f"/api/workflows/{workflow}/test",
            {"testData": {"note": self.tenant.mark}},
            "test a workflow",
        )
        return Resource(run["id"])

    async def attachment(self, conversation: Resource | None = None) -> Resource:
        conversation = conversation or self.tenant.conversation
        form = aiohttp.FormData()
        form.add_field("file", f"note {self.tenant.mark}".encode(), filename="note.txt")
        reply = await self.target.request(
            "POST",
            f"/public/conversations/{conversation.id}/attachments",
            data=form,
            headers={**self.tenant.public, "X-Conversation-Token": conversation.extra["token"]},
        )
        made = await expect(reply, 201, "upload an attachment")
        attachment_id, sig = made["url"].rsplit("/", 2)[-2:]
        return Resource(attachment_id, {"sig": sig})

    async def notification(self) -> Resource:
        """Notifications are made by the hub, not by a call: reuse the newest."""
        for _ in range(600):
            reply = await self.target.request(
                "GET", "/api/notifications", headers=self.tenant.headers
            )
            found = (await expect(reply, 200, "list notifications"))["notifications"]
            if found:
                return Resource(found[0]["id"])
            await asyncio.sleep(0.1)
        raise SetupError("no notification arrived within a minute")

    async def make(self, kind: str, parent: str | None = None) -> Resource:
        """A fresh resource of `kind` (inside `parent`, for nested ones)."""
        maker = getattr(self, kind, None)
        if maker is None or kind.startswith("_"):
            raise SetupError(f"no factory for {kind!r}: add one to bench/security/target.py")
        return await (maker(parent) if parent else maker())


async def signup(target: Target, label: str) -> dict:
    email = f"{label.lower()}-{uuid.uuid4().hex[:10]}@example.com"
    body = {"email": email, "password": PASSWORD, "company_name": f"{label} Inc"}
    reply = await target.request("POST", "/api/auth/signup", json=body)
    return await expect(reply, 201, "sign up")


async def build_tenant(target: Target, label: str, *, settle: bool = True) -> Tenant:
    """A company with one of every kind of resource. With `settle`, waits until
    background work on them (document processing) is over, so that the rows
    stand still for a snapshot."""
    session = await signup(target, label)
    mark = canary(label)
    tenant = Tenant(
        label=label,
        mark=mark,
        token=session["access_token"],
        user_id=session["user"]["id"],
        company_id=session["company"]["id"],
        email=session["user"]["email"],
        agent=Resource(""),
        key=Resource(""),
        conversation=Resource(""),
    )
    make = Factory(target, tenant)
    tenant.agent = await make.agent()
    tenant.key = await make.key(tenant.agent.id)
    tenant.conversation = await make.conversation()
    tenant.resources = {
        "agent": tenant.agent,
        "key": tenant.key,
        "conversation": tenant.conversation,
        "message": await make.message(),
        "contact": await make.contact(),
        "document": await make.document(),
        "workflow": await make.workflow(),
        "attachment": await make.attachment(),
    }
    tenant.resources["deal"] = await make.deal(tenant.resources["contact"].id)
    tenant.resources["execution"] = await make.execution()
    rating = await target.request(
        "POST",
        f"/public/conversations/{tenant.conversation.id}/rating",
        json={"rating": 4, "comment": mark},
        headers={**tenant.public, "X-Conversation-Token": tenant.conversation.extra["token"]},
    )
    await expect(rating, 201, "rate the conversation")
    if settle:
        await wait_processed(target, tenant, tenant.resources["document"].id)
        tenant.resources["notification"] = await make.notification()
    return tenant


async def wait_processed(target: Target, tenant: Tenant, document_id: str) -> dict:
    for _ in range(1200):
        reply = await target.request(
            "GET", f"/api/knowledge-base/{document_id}", headers=tenant.headers
        )
        document = await expect(reply, 200, "read a document")
        if document["status"] in ("processed", "failed"):
            return document
        await asyncio.sleep(0.1)
    raise SetupError(f"document {document_id} was not processed within two minutes")


def webhook_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# ---------- what PostgreSQL holds ----------


async def tenant_tables(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        """SELECT table_name FROM information_schema.columns
           WHERE table_schema = 'public' AND column_name = 'company_id'
           ORDER BY table_name"""
    )
    return [r["table_name"] for r in rows]


async def snapshot(target: Target, company_id: str) -> dict[str, list[str]]:
    """Every row of the company, as JSON text, table by table."""
    conn = await target.connect_db()
    try:
        rows = {
            "companies": [
                await conn.fetchval(
                    "SELECT row_to_json(c)::text FROM companies c WHERE id = $1",
                    uuid.UUID(company_id),
                )
            ]
        }
        for table in await tenant_tables(conn):
            rows[table] = sorted(
                await conn.fetchval(
                    f"""SELECT coalesce(array_agg(row_to_json(t)::text), '{{}}')
                        FROM "{table}" t WHERE company_id = $1""",
                    uuid.UUID(company_id),
                )
            )
        return rows
    finally:
        await conn.close()


def changes(before: dict[str, list[str]], after: dict[str, list[str]]) -> list[str]:
    """What differs between two snapshots, table by table."""
    found = []
    for table in sorted(before.keys() | after.keys()):
        old, new = set(before.get(table, [])), set(after.get(table, []))
        if old != new:
            found.append(
                f"{table}: {len(old - new)} row(s) changed or gone, {len(new - old)} new or changed"
            )
    return found


async def mentions(
    target: Target, company_id: str, needles: set[str], skip: tuple[str, ...] = ()
) -> list[str]:
    """Rows of the company that mention any of `needles` (another company's ids
    and canaries): a reference stored across tenants."""
    found = []
    for table, rows in (await snapshot(target, company_id)).items():
        if table in skip:
            continue
        for row in rows:
            hits = sorted(n for n in needles if n and n in row)
            if hits:
                found.append(f"{table} row mentions {', '.join(hits)}: {row[:300]}")
    return found
