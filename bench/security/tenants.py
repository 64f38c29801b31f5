"""Companies filled with one of everything, made through the public API the
way a customer would make them. Every text a `Tenant` writes carries its
canary (`CANARY-<label>-<hex>`), so a leak shows as a string search."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.security.target import ORIGIN, Reply, SetupError, Target

PASSWORD = "correct horse battery"


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

    async def invitation(self) -> Resource:
        body = {"email": f"invited-{uuid.uuid4().hex[:10]}@example.com"}
        made = await self._post("/api/invitations", body, "invite someone")
        return Resource(made["id"], {"token": made["token"]})

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
            raise SetupError(f"no factory for {kind!r}: add one to bench/security/tenants.py")
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
        "invitation": await make.invitation(),
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
