"""Cross-tenant probes generated from the route table.

For every route (`http_api.routes.api.routes`: every path, every verb) the
probe first makes a *control* request with the attacker's own, freshly made
resources, and requires it to work (2xx, or 409 for a state conflict): that
proves the request it builds would reach the data. Then it sends the same
request with the victim's real ids: in the path (all of them, and each one
alone next to the attacker's own), in the query and in the body. A victim id
in the path must get 404 NOT_FOUND in the standard shape: never 403, never
2xx. Ids in a query or body may be refused (400/404) or filter to nothing,
but no answer may carry the victim's ids or texts. The dashboard's Socket.IO
events are probed the same way. Afterwards the victim's rows must be exactly
as they were, and no row of the attacker's company may mention the victim.

A path parameter, a body id field, a dynamic route or a Socket.IO event the
generator cannot place makes the check fail with a message saying so: a new
route is covered, or the suite says it is not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import socketio
from aiohttp import web

from bench.security.examples import Unfillable, example, is_id_field
from bench.security.target import (
    ORIGIN,
    Factory,
    Reply,
    Resource,
    Result,
    Target,
    Tenant,
    build_tenant,
    changes,
    mentions,
    snapshot,
    webhook_signature,
)
from http_api.routes import api
from http_api.routing import Route
from hub.realtime.dashboard import DashboardNamespace

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
}
# Kinds made inside another (the parent is the previous path parameter).
NESTED = {"key": "agent", "execution": "workflow", "message": "conversation"}
# Dynamic routes declared outside the route table, each with its own probe.
EXTRA_ROUTES = {"/public/attachments/{id}/{sig}"}
# The dashboard's events, with the payload each takes besides its conversation.
DASHBOARD_EVENTS = {
    "conversation:takeover": {},
    "conversation:release": {},
    "message:send": {"content": "probe"},
}
CONTROL_OK = range(200, 300)


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
                "add the collection to COLLECTIONS in bench/security/crosstenant.py"
            )
        found.append((match.group(1), kind))
    return found


def kind_of_field(name: str) -> str:
    kind = name.removesuffix("_id")
    if kind not in COLLECTIONS.values():
        raise Unfillable(f"cannot tell what kind of id the field {name!r} holds")
    return kind


@dataclass
class Ids:
    """What one request names: resources by path parameter, the resources its
    query and body id fields name (by kind), and the attacker's credentials
    it is sent with (a conversation for its token, a workflow for its secret)."""

    path: dict[str, Resource]
    fields: dict[str, Resource]
    credentials: dict[str, Resource]

    def id_for(self, name: str) -> str:
        return self.fields[kind_of_field(name)].id

    def replace(self, path=None, fields=None) -> Ids:
        return Ids(path or self.path, fields or self.fields, self.credentials)


class Prober:
    def __init__(self, target: Target, attacker: Tenant, victim: Tenant) -> None:
        self.target, self.attacker, self.victim = target, attacker, victim
        self.make = Factory(target, attacker)
        self.result = Result("cross-tenant")
        self.secrets = victim.secrets()
        self.sent: set[str] = set()  # the victim's ids the attacker has sent so far

    # ---------- building requests ----------

    async def control_ids(self, route: Route) -> Ids:
        """Fresh resources of the attacker in the path (a control may delete
        them), its standing ones in the query and body."""
        path: dict[str, Resource] = {}
        kinds: dict[str, Resource] = {}
        for param, kind in path_kinds(route.path):
            parent = NESTED.get(kind)
            parent_id = kinds[parent].id if parent in kinds else None
            kinds[kind] = path[param] = await self._own(route, kind, parent_id)
        standing = self.attacker.resources
        credentials = {
            "conversation": kinds.get("conversation", standing["conversation"]),
            "workflow": kinds.get("workflow", standing["workflow"]),
        }
        return Ids(path, dict(standing), credentials)

    async def _own(self, route: Route, kind: str, parent: str | None) -> Resource:
        # A publishable key speaks for its own agent only.
        if route.auth == "key" and kind in ("agent", "key"):
            return self.attacker.resources[kind]
        return await self.make.make(kind, parent)

    def _id_fields(self, route: Route) -> list[str]:
        names = ["agent_id"] if is_upload(route) else []
        for model in (route.query, route.body):
            if model is not None:
                schema = model.model_json_schema()
                defs = schema.get("$defs", {})
                names += [
                    n for n, p in schema.get("properties", {}).items() if is_id_field(n, p, defs)
                ]
        return names

    def candidates(self, route: Route, ids: Ids) -> list[tuple[dict | None, Any]]:
        """(query, body) pairs to try: the smallest, then with every field."""
        made = []
        for full in (False, True):
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

    async def send(self, route: Route, ids: Ids, query, body) -> Reply:
        path = route.path
        for param, resource in ids.path.items():
            path = path.replace("{" + param + "}", resource.id)
        headers: dict[str, str] = {}
        if route.auth == "user":
            headers.update(self.attacker.headers)
        elif route.auth == "key":
            headers.update(self.attacker.public)
        headers["X-Conversation-Token"] = ids.credentials["conversation"].extra["token"]
        raw = None
        data = None
        if body is not None:
            raw = orjson.dumps(body)
            headers["Content-Type"] = "application/json"
        elif is_upload(route):
            data = aiohttp.FormData()  # an upload: multipart with a small file
            data.add_field("file", b"probe text\n", filename="probe.txt")
            data.add_field("agent_id", ids.fields["agent"].id)  # the knowledge upload reads it
        elif route.method == "POST":
            raw = b"{}"
            headers["Content-Type"] = "application/json"
        if route.rate_limit == "webhook":
            secret = ids.credentials["workflow"].extra["secret"]
            headers["X-Syntera-Signature"] = webhook_signature(secret, raw)
        reply = await self.target.request(
            route.method, path, raw=raw, data=data, params=query, headers=headers
        )
        self.result.count()
        return reply

    # ---------- judging answers ----------

    def leaks(self, reply: Reply, sent_now: set[str]) -> list[str]:
        # An error may repeat ids it was sent. A success may not hold an id it
        # was sent (that is a stored reference), only ones sent earlier (the
        # attacker's own audit trail records what it asked for).
        allowed = self.sent | sent_now if reply.status >= 400 else self.sent - sent_now
        return sorted(s for s in self.secrets - allowed if s in reply.text)

    def judge(self, route: Route, what: str, reply: Reply, sent: set[str], in_path: bool) -> None:
        where = f"{route.method} {route.path} with the victim's {what}"
        if leaked := self.leaks(reply, sent):
            self.result.fail(f"{where}: the answer ({reply.status}) holds {', '.join(leaked)}")
        self.sent |= sent
        if in_path:
            if route.auth == "none":
                # The path id is the address a webhook sender is given, and the
                # signature its credential: refused either way, nothing revealed.
                ok = reply.is_error(404, "NOT_FOUND") or reply.is_error(401)
            else:
                ok = reply.is_error(404, "NOT_FOUND")
            if not ok:
                self.result.fail(f"{where}: {reply.status} {reply.text[:300]} (expected 404)")
        elif reply.status >= 500 or reply.status == 403:
            self.result.fail(f"{where}: {reply.status} {reply.text[:300]}")

    # ---------- running ----------

    async def control(self, route: Route) -> int | None:
        """Which request candidate works with the attacker's own ids, if any."""
        ids = await self.control_ids(route)
        reply = None
        for index, (query, body) in enumerate(self.candidates(route, ids)):
            reply = await self.send(route, ids, query, body)
            self.judge(route, "nothing (the control)", reply, set(), False)
            if reply.status in CONTROL_OK or reply.status == 409:
                return index
        assert reply is not None
        self.result.fail(
            f"{route.method} {route.path}: the control request with the attacker's own "
            f"ids failed ({reply.status} {reply.text[:300]}), so the probe proves nothing; "
            "teach bench/security/examples.py to build it"
        )
        return None

    async def probe_route(self, route: Route) -> None:
        params = [p for p, _ in path_kinds(route.path)]
        id_fields = self._id_fields(route)
        if route.auth == "none" and not params:
            self.result.note(f"{route.method} {route.path}: no tenant data (sign-up, log-in)")
            return
        chosen = await self.control(route)
        if chosen is None:
            return
        # The victim's ids in the path: all of them, then each alone.
        variants = [set(params)] + ([{p} for p in params] if len(params) > 1 else [])
        for victim_params in variants if params else []:
            ids = await self.control_ids(route)
            kinds = dict(path_kinds(route.path))
            ids = ids.replace(
                path={
                    p: self.victim.resources[kinds[p]] if p in victim_params else r
                    for p, r in ids.path.items()
                }
            )
            query, body = self.candidates(route, ids)[chosen]
            reply = await self.send(route, ids, query, body)
            sent = {ids.path[p].id for p in victim_params}
            self.judge(route, ", ".join(sorted(victim_params)), reply, sent, True)
        # The victim's ids in the query and body, the path the attacker's own.
        if id_fields:
            ids = await self.control_ids(route)
            ids = ids.replace(fields=dict(self.victim.resources))
            query, body = self.candidates(route, ids)[chosen]
            named = {**(query or {}), **(body if isinstance(body, dict) else {})}
            sent = {ids.id_for(n) for n in id_fields if n in named or is_upload(route)}
            reply = await self.send(route, ids, query, body)
            self.judge(route, " and ".join(sorted(id_fields)), reply, sent, False)

    async def probe_attachment_link(self) -> None:
        """The signed file link: the victim's file with the attacker's signature."""
        own = self.attacker.resources["attachment"]
        theirs = self.victim.resources["attachment"]
        control = await self.target.request(
            "GET", f"/public/attachments/{own.id}/{own.extra['sig']}"
        )
        if control.status != 200:
            self.result.fail(f"attachment link control: {control.status}")
        reply = await self.target.request(
            "GET", f"/public/attachments/{theirs.id}/{own.extra['sig']}"
        )
        if not reply.is_error(404, "NOT_FOUND") or self.victim.mark in reply.text:
            self.result.fail(f"the victim's attachment with another signature: {reply.status}")
        self.result.count()

    async def probe_dashboard(self) -> None:
        """The dashboard's Socket.IO events, naming the victim's conversation."""
        unknown = set(DashboardNamespace.events) - set(DASHBOARD_EVENTS)
        if unknown:
            self.result.fail(
                f"dashboard events {sorted(unknown)} have no probe payload: add them to "
                "DASHBOARD_EVENTS in bench/security/crosstenant.py"
            )
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(
            self.target.url,
            namespaces=["/dashboard"],
            auth={"token": self.attacker.token},
            transports=["websocket"],
            wait_timeout=10,
        )
        try:
            own = await self.make.conversation()
            for event, payload in DASHBOARD_EVENTS.items():
                control = await client.call(
                    event, {"conversation_id": own.id, **payload}, namespace="/dashboard"
                )
                if not control.get("ok"):
                    self.result.fail(f"dashboard {event} control failed: {control}")
                ack = await client.call(
                    event,
                    {"conversation_id": self.victim.conversation.id, **payload},
                    namespace="/dashboard",
                )
                body = orjson.dumps(ack).decode()
                if ack.get("ok") or ack.get("code") != "NOT_FOUND":
                    self.result.fail(f"dashboard {event} on the victim's conversation: {ack}")
                if self.victim.mark in body:
                    self.result.fail(f"dashboard {event} leaked the victim's text: {body[:300]}")
                self.result.count()
        finally:
            await client.disconnect()

    def uncovered_routes(self, app: web.Application) -> list[str]:
        declared = {r.path for r in api.routes} | EXTRA_ROUTES
        return sorted(
            resource.canonical
            for resource in app.router.resources()
            if isinstance(resource, web.DynamicResource) and resource.canonical not in declared
        )


def is_upload(route: Route) -> bool:
    """A multipart upload: a POST without a JSON body that can answer 415."""
    return route.method == "POST" and route.body is None and 415 in route.errors


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


async def run(target: Target, bounded: bool = True) -> Result:
    """Every route, every verb (the route table is small: bounded or not, all
    of it runs)."""
    victim = await build_tenant(target, "Victim")
    attacker = await build_tenant(target, "Attacker")
    before = await snapshot(target, victim.company_id)
    prober = Prober(target, attacker, victim)
    for path in prober.uncovered_routes(target.app):
        prober.result.fail(
            f"{path} is a dynamic route outside the route table with no probe: "
            "add one to bench/security/crosstenant.py"
        )
    for route in api.routes:
        try:
            await prober.probe_route(route)
        except Unfillable as exc:
            prober.result.fail(str(exc))
    await prober.probe_attachment_link()
    await prober.probe_dashboard()
    after = await snapshot(target, victim.company_id)
    for change in changes(before, after):
        prober.result.fail(f"the victim's rows changed: {change}")
    stored = await mentions(target, attacker.company_id, victim.secrets(), skip=("audit_log",))
    for row in stored:
        prober.result.fail(f"the attacker's company stores a reference to the victim: {row}")
    prober.result.note(
        f"{len(api.routes)} routes, {prober.result.checked} probes; victim rows in "
        f"{sum(1 for rows in before.values() if rows)} tables unchanged"
    )
    return prober.result


__all__ = ["ORIGIN", "run"]
