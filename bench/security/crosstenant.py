"""Cross-tenant probes generated from the route table.

For every route (`http_api.routes.api.routes`: every path, every verb) the
probe first makes a *control* request with the attacker's own, freshly made
resources, and requires it to work (2xx, or 409 for a state conflict): that
proves the request it builds would reach the data. Then it sends the same
request with the victim's real ids: in the path (all of them, and each one
alone next to the attacker's own), in the query and in the body. A victim id
in the path must get 404 NOT_FOUND in the standard shape: never 403, never
2xx. Ids in a query or body may be refused (400/404) or filter to nothing,
but no answer may carry the victim's ids or texts. Verbs no route declares
must get 405 on every path with the victim's ids, the signed attachment link
404 with another file's signature, and the dashboard's Socket.IO events
NOT_FOUND for the victim's conversation. Afterwards the victim's rows must be exactly
as they were, and no row of the attacker's company may mention the victim.

A path parameter, a body id field, a dynamic route or a Socket.IO event the
generator cannot place makes the check fail with a message saying so: a new
route is covered, or the suite says it is not.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from bench.security.examples import Unfillable
from bench.security.requests import Requests, id_fields, is_upload, path_kinds
from bench.security.rows import changes, mentions, snapshot
from bench.security.target import Reply, Result, Target, connect_socket, livekit_stand_in
from bench.security.tenants import Tenant, build_tenant
from http_api.realtime.dashboard import DashboardNamespace
from http_api.routes import api
from http_api.routing import Route

VERBS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
# Routes whose credential is in their path, each with a probe of its own.
OWN_PROBES = {"/public/attachments/{id}/{sig}"}
# The dashboard's events, with the payload each takes besides its conversation.
DASHBOARD_EVENTS = {
    "conversation:takeover": {},
    "conversation:release": {},
    "message:send": {"content": "probe"},
    "conversation:watch": {},
    "conversation:unwatch": {},
}


class Prober:
    def __init__(self, target: Target, attacker: Tenant, victim: Tenant) -> None:
        self.target, self.attacker, self.victim = target, attacker, victim
        self.requests = Requests(target, attacker)
        self.result = Result("cross-tenant")
        self.secrets = victim.secrets()
        self.sent: set[str] = set()  # the victim's ids the attacker has sent so far

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

    async def probe_route(self, route: Route) -> None:
        if route.path in OWN_PROBES:
            return
        params = [p for p, _ in path_kinds(route.path)]
        fields = id_fields(route)
        if route.auth == "none" and not params:
            self.result.note(
                f"{route.method} {route.path}: names no tenant data (sign-up, pages, health)"
            )
            return
        # The control: the attacker's own ids must work, or the probe proves nothing.
        control = await self.requests.working(route)
        for reply in control.replies:  # the attacker's own data: nothing of the victim's
            if leaked := self.leaks(reply, set()):
                self.result.fail(f"{route.method} {route.path} answers with {', '.join(leaked)}")
        if control.index is None:
            last = control.replies[-1]
            self.result.fail(
                f"{route.method} {route.path}: the control request with the attacker's own "
                f"ids failed ({last.status} {last.text[:300]}), so the probe proves nothing; "
                "teach bench/security/examples.py to build it"
            )
            return
        kinds = dict(path_kinds(route.path))
        # The victim's ids in the path: all of them, then each alone.
        variants = [set(params)] + ([{p} for p in params] if len(params) > 1 else [])
        for victim_params in variants if params else []:
            ids = await self.requests.ids(route)
            ids = ids.replace(
                path={
                    p: self.victim.resources[kinds[p]] if p in victim_params else r
                    for p, r in ids.path.items()
                }
            )
            query, body = self.requests.candidates(route, ids)[control.index]
            reply = await self.requests.send(route, ids, query, body)
            sent = {ids.path[p].id for p in victim_params}
            self.judge(route, ", ".join(sorted(victim_params)), reply, sent, True)
        # The victim's ids in the query and body, the path the attacker's own.
        if fields:
            ids = (await self.requests.ids(route)).replace(fields=dict(self.victim.resources))
            query, body = self.requests.candidates(route, ids)[control.index]
            named = {**(query or {}), **(body if isinstance(body, dict) else {})}
            sent = {ids.id_for(n) for n in fields if n in named or is_upload(route)}
            reply = await self.requests.send(route, ids, query, body)
            self.judge(route, " and ".join(sorted(fields)), reply, sent, False)

    async def probe_other_verbs(self, routes: list[Route]) -> None:
        """Verbs no route declares, on every path holding the victim's ids:
        refused the same way whatever the ids (405), nothing in the answer."""
        declared: dict[str, set[str]] = {}
        for route in routes:
            declared.setdefault(route.path, set()).add(route.method)
        for path, methods in declared.items():
            try:
                kinds = path_kinds(path)
            except Unfillable:
                continue  # its route has failed the check already
            if not kinds:
                continue
            concrete = path
            for param, kind in kinds:
                concrete = concrete.replace("{" + param + "}", self.victim.resources[kind].id)
            for method in sorted(VERBS - methods):
                headers = self.attacker.public if path.startswith("/public/") else {}
                reply = await self.target.request(
                    method, concrete, headers={**self.attacker.headers, **headers}
                )
                self.result.count()
                preflight = method == "OPTIONS" and reply.status == 204 and not reply.body
                head = method == "HEAD" and reply.status == 405  # a HEAD answer has no body
                if not (preflight or head or reply.is_error(405, "METHOD_NOT_ALLOWED")):
                    self.result.fail(f"{method} {path} with the victim's ids: {reply.status}")
                if leaked := self.leaks(reply, set()):
                    self.result.fail(f"{method} {path} answers with {', '.join(leaked)}")

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
        client, refusal = await connect_socket(self.target, "/dashboard", self.attacker.token)
        if client is None:
            self.result.fail(f"the attacker could not connect to /dashboard: {refusal}")
            return
        try:
            own = await self.requests.make.conversation()
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

    def uncovered_routes(self, app: web.Application, routes: list[Route]) -> list[str]:
        declared = {r.template for r in routes}
        return sorted(
            resource.canonical
            for resource in app.router.resources()
            if isinstance(resource, web.DynamicResource) and resource.canonical not in declared
        )


environment = livekit_stand_in


async def run(target: Target, bounded: bool = True, routes: list[Route] | None = None) -> Result:
    """Every route of `routes` (the app's route table), every verb: the table
    is small, so bounded or not, all of it runs."""
    routes = api.routes if routes is None else routes
    victim = await build_tenant(target, "Victim")
    attacker = await build_tenant(target, "Attacker")
    before = await snapshot(target, victim.company_id)
    prober = Prober(target, attacker, victim)
    for path in prober.uncovered_routes(target.app, routes):
        prober.result.fail(
            f"{path} is a dynamic route outside the route table with no probe: "
            "add one to bench/security/crosstenant.py"
        )
    for route in routes:
        try:
            await prober.probe_route(route)
        except Unfillable as exc:
            prober.result.fail(str(exc))
    await prober.probe_other_verbs(routes)
    await prober.probe_attachment_link()
    await prober.probe_dashboard()
    after = await snapshot(target, victim.company_id)
    for change in changes(before, after):
        prober.result.fail(f"the victim's rows changed: {change}")
    stored = await mentions(target, attacker.company_id, victim.secrets(), skip=("audit_log",))
    for row in stored:
        prober.result.fail(f"the attacker's company stores a reference to the victim: {row}")
    prober.result.count(prober.requests.sent)
    prober.result.note(
        f"{len(routes)} routes, {prober.result.checked} requests; the victim's rows in "
        f"{sum(1 for rows in before.values() if rows)} tables compared before and after"
    )
    return prober.result
