"""Requests made from the route table: for any route, a tenant's fresh
resources in its path, valid query and body (bench/security/examples.py), and
the right credentials; so a route added later is attacked with no one
writing its request by hand.

The kind of each path id comes from the collection before it
(`/api/agents/{id}/keys/{key_id}`: an agent, then a key), the kind of each
query or body id from its field's name (`contact_id`: a contact). What
cannot be placed raises `Unfillable`: the suite fails loudly rather than
skipping a route it does not understand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from bench.security.examples import Unfillable, example, is_id_field
from bench.security.target import Reply, Target
from bench.security.tenants import Factory, Resource, Tenant, webhook_signature
from http_api.routing import Route

PARAM = re.compile(r"{(\w+)}")

# The collection a path segment names, as the kind of resource its id is.
COLLECTIONS = {
    "agents": "agent",
    "keys": "key",
    "conversations": "conversation",
    "messages": "message",
    "contacts": "contact",
    "deals": "deal",
    "knowledge-base": "document",
    "workflows": "workflow",
    "executions": "execution",
    "notifications": "notification",
    "attachments": "attachment",
    "invitations": "invitation",
}
# Kinds made inside another (the parent is the previous path parameter).
NESTED = {"key": "agent", "execution": "workflow", "message": "conversation"}


def path_kinds(path: str) -> list[tuple[str, str]]:
    """(parameter, kind) for each path parameter, from the segment before it."""
    segments = path.strip("/").split("/")
    found = []
    for index, segment in enumerate(segments):
        match = PARAM.fullmatch(segment)
        if not match:
            continue
        collection = segments[index - 1] if index else ""
        kind = COLLECTIONS.get(collection)
        if kind is None:
            raise Unfillable(
                f"{path}: cannot tell what {{{match.group(1)}}} after {collection!r} is; "
                "add the collection to COLLECTIONS in bench/security/requests.py"
            )
        found.append((match.group(1), kind))
    return found


def kind_of_field(name: str) -> str:
    kind = name.removesuffix("_id")
    if kind not in COLLECTIONS.values():
        raise Unfillable(f"cannot tell what kind of id the field {name!r} holds")
    return kind


def is_upload(route: Route) -> bool:
    """A multipart upload: a POST without a JSON body that can answer 415."""
    return route.method == "POST" and route.body is None and 415 in route.errors


def is_signed(route: Route) -> bool:
    """A route nobody logs in to that names a workflow: an inbound webhook,
    whose credential is a signature made with the workflow's secret."""
    return route.auth == "none" and "workflow" in dict(path_kinds(route.path)).values()


def id_fields(route: Route) -> list[str]:
    """The query and body fields that hold ids (an upload's `agent_id` too)."""
    names = ["agent_id"] if is_upload(route) else []
    for model in (route.query, route.body):
        if model is not None:
            schema = model.model_json_schema()
            defs = schema.get("$defs", {})
            names += [n for n, p in schema.get("properties", {}).items() if is_id_field(p, defs)]
    return names


@dataclass
class Ids:
    """What one request names: resources by path parameter, the resources its
    query and body id fields name (by kind), and the credentials it is sent
    with (a conversation for its token, a workflow for its webhook secret)."""

    path: dict[str, Resource]
    fields: dict[str, Resource]
    credentials: dict[str, Resource]

    def id_for(self, name: str) -> str:
        return self.fields[kind_of_field(name)].id

    def replace(self, path=None, fields=None) -> Ids:
        return Ids(path or self.path, fields or self.fields, self.credentials)


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Requests:
    """Builds and sends requests to any route as one tenant."""

    def __init__(self, target: Target, tenant: Tenant) -> None:
        self.target, self.tenant = target, tenant
        self.make = Factory(target, tenant)
        self.sent = 0

    async def ids(self, route: Route) -> Ids:
        """Fresh resources in the path (a request may delete them), the
        tenant's standing ones in the query and body."""
        path: dict[str, Resource] = {}
        kinds: dict[str, Resource] = {}
        for param, kind in path_kinds(route.path):
            parent = NESTED.get(kind)
            parent_id = kinds[parent].id if parent in kinds else None
            kinds[kind] = path[param] = await self._fresh(route, kind, parent_id)
        standing = self.tenant.resources
        credentials = {
            "conversation": kinds.get("conversation", standing["conversation"]),
            "workflow": kinds.get("workflow", standing["workflow"]),
        }
        return Ids(path, dict(standing), credentials)

    async def _fresh(self, route: Route, kind: str, parent: str | None) -> Resource:
        # A publishable key speaks for its own agent only.
        if route.auth == "key" and kind in ("agent", "key"):
            return self.tenant.resources[kind]
        return await self.make.make(kind, parent)

    def candidates(self, route: Route, ids: Ids) -> list[tuple[dict | None, Any]]:
        """(query, body) pairs to try: with every field, then the smallest."""
        made = []
        for full in (True, False):
            query = body = None
            if route.query is not None:
                schema = route.query.model_json_schema()
                raw = example(schema, schema.get("$defs", {}), ids.id_for, full=False)
                query = {k: _query_value(v) for k, v in raw.items()}
            if route.body is not None:
                schema = route.body.model_json_schema(mode="validation")
                body = example(schema, schema.get("$defs", {}), ids.id_for, full=full)
            if (query, body) not in made:
                made.append((query, body))
        return made

    async def send(
        self, route: Route, ids: Ids, query: dict | None, body: Any, raw: bytes | None = None
    ) -> Reply:
        """`raw` replaces the JSON of `body` (for bytes JSON cannot say)."""
        path = route.path
        for param, resource in ids.path.items():
            path = path.replace("{" + param + "}", resource.id)
        headers: dict[str, str] = {}
        if route.auth == "user":
            headers.update(self.tenant.headers)
        elif route.auth == "key":
            headers.update(self.tenant.public)
        headers["X-Conversation-Token"] = ids.credentials["conversation"].extra["token"]
        data = None
        if raw is None and body is not None:
            raw = orjson.dumps(body)
        if raw is not None:
            headers["Content-Type"] = "application/json"
        elif is_upload(route):
            data = aiohttp.FormData()  # an upload: multipart with a small file
            data.add_field("file", b"probe text\n", filename="probe.txt")
            data.add_field("agent_id", ids.fields["agent"].id)  # the knowledge upload reads it
        elif route.method == "POST":
            raw = b"{}"
            headers["Content-Type"] = "application/json"
        if is_signed(route):
            secret = ids.credentials["workflow"].extra["secret"]
            headers["X-Syntera-Signature"] = webhook_signature(secret, raw or b"")
        self.sent += 1
        return await self.target.request(
            route.method, path, raw=raw, data=data, params=query, headers=headers
        )

    async def working(self, route: Route) -> Working:
        """Tries each candidate with fresh ids until one works (2xx, or 409
        for a state conflict: the request reached the resource)."""
        found = Working(None, None, None, None, [])
        for index in range(2):
            ids = await self.ids(route)
            candidates = self.candidates(route, ids)
            if index >= len(candidates):
                break
            query, body = candidates[index]
            reply = await self.send(route, ids, query, body)
            found.replies.append(reply)
            found.ids, found.query, found.body = ids, query, body
            if 200 <= reply.status < 300 or reply.status == 409:
                found.index = index
                break
        return found


@dataclass
class Working:
    index: int | None  # the candidate that worked, if one did
    ids: Ids | None  # what the last candidate sent
    query: dict | None
    body: Any
    replies: list[Reply]  # every answer on the way
