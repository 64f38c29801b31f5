"""Injection strings in every text field of every JSON body the OpenAPI
document declares, and in every free-text query parameter.

For each body the suite first finds a request that works (bench/security/
requests.py), then sends it again with one text field replaced by each
string: SQL, templates (Jinja's and the workflows' own `{{...}}`), HTML and
JavaScript, NUL, lone surrogates, very long Unicode, bidirectional overrides,
combining marks, control characters. Nothing may answer 5xx; refusals must
be the standard error (NUL and lone surrogates must be refused); and what is
stored must come back byte-identical: in the answer, and read again through
the resource's GET. Typed strings (emails, URLs, ids, dates, patterns) are
attacked too, but only free text is compared, since a typed value may be
normalised.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from bench.security.examples import non_null, string_paths, value_at, with_value
from bench.security.requests import Requests, path_kinds
from bench.security.target import Reply, Result, Target, livekit_stand_in
from bench.security.tenants import build_tenant
from http_api.routes import api
from http_api.routing import Route

INJECTIONS = {
    "sql quote": "Robert'); DROP TABLE agents; --",
    "sql tautology": "' OR '1'='1' --",
    "sql union": "x' UNION SELECT password_hash FROM users --",
    "sql sleep": "1'; SELECT pg_sleep(5); --",
    "jinja": "{{7*7}} {{ config }} {% for x in range(3) %}y{% endfor %}",
    "workflow template": "{{trigger.secret}} {{contact.email}} {{ variables }}",
    "other templates": "${7*7} #{7*7} <%= 7*7 %> @{7*7}",
    "script": "<script>alert(document.cookie)</script>",
    "attribute": '"><img src=x onerror=alert(1)>',
    "javascript url": "javascript:alert(1)",
    "right-to-left override": "invoice\u202eexe.pdf",
    "invisible and bidi": "a\u200bb\u200cc\u200dd\u2066e\u2069f\u061cg\ufeffh",
    "combining marks": "e\u0301 is not \u00e9, Å is not A\u030a",
    "astral and zwj": "\U0001f469\u200d\U0001f469\u200d\U0001f467 \U0001d573\U0001d58a \U0010fffd",
    "long unicode": "\U0001d54f" * 1000,
    "control characters": "tab\tcr\rlf\n\x1b[31mred\x7f\x01",
    "format strings": "%s%s%n %(x)s {0} {x!r} %%",
    "path": "../../../etc/passwd",
    "operator object as text": '{"$gt": ""}',
    "backslashes": "\\' \\\" \\x00 \\u0000 \\",
    "tsquery syntax": "!(a & b) | c:* <-> 'd' & !!",
    "like wildcards": "%_\\",
    "nul": "before\x00after",
}
# One of each family, for the bounded run.
BOUNDED = [
    "sql quote",
    "jinja",
    "script",
    "right-to-left override",
    "long unicode",
    "control characters",
    "tsquery syntax",
    "like wildcards",
    "nul",
]
LONE_SURROGATE = "lone surrogate"  # sent as raw JSON: "\ud800" cannot be encoded


def _routes_with_bodies(document: dict) -> list[tuple[Route, dict]]:
    by_key = {(r.method.lower(), r.path): r for r in api.routes}
    found = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            json_body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if json_body and (method, path) in by_key:
                found.append((by_key[(method, path)], json_body["schema"]))
    return found


def _free_text(schema: dict, defs: dict) -> bool:
    schema = non_null(schema, defs)
    return not any(k in schema for k in ("format", "pattern", "enum", "const"))


# Fields that must be new on each request for it to store anything new: an
# email is unique per company (and per hub, for sign-up), a client_id is the
# sender's idempotency key.
UNIQUE_FIELDS = ("client_id",)


def _unique_values(body: Any, schema: dict, defs: dict, skip: tuple) -> Any:
    for path, field in string_paths(schema, defs):
        if path == skip or value_at(body, path) is None:
            continue
        if non_null(field, defs).get("format") == "email":
            body = with_value(body, path, f"probe-{uuid.uuid4().hex[:12]}@example.com")
        elif path[-1] in UNIQUE_FIELDS:
            body = with_value(body, path, uuid.uuid4().hex)
    return body


class Injector:
    def __init__(self, target: Target, requests: Requests, result: Result) -> None:
        self.target, self.requests, self.result = target, requests, result
        self.compared = 0

    def standard(self, where: str, reply: Reply) -> bool:
        if reply.status >= 500:
            self.result.fail(f"{where}: {reply.status} {reply.text[:300]}")
            return False
        if reply.status >= 400 and not reply.is_error(reply.status):
            self.result.fail(
                f"{where}: {reply.status} without the standard error: {reply.text[:200]}"
            )
            return False
        return True

    async def reread(self, route: Route, ids, reply: Reply) -> Any:
        """The resource as its GET shows it after the write, if it has one:
        the same path for an update, the path and the new id for a create."""
        template, created = route.path, None
        if route.method == "POST":
            if not (isinstance(reply.json, dict) and "id" in reply.json):
                return None
            template, created = f"{route.path}/{{id}}", str(reply.json["id"])
        get = next((r for r in api.routes if r.method == "GET" and r.path == template), None)
        if get is None:
            return None
        path = template
        for param, resource in ids.path.items():
            path = path.replace("{" + param + "}", resource.id)
        if created is not None:
            path = path.replace("{id}", created)
        tenant = self.requests.tenant
        again = await self.target.request(
            "GET", path, headers=tenant.headers if get.auth == "user" else tenant.public
        )
        return again.json if again.status == 200 else None

    async def field(self, route: Route, schema: dict, defs: dict, working, path: tuple, names):
        field_schema = dict(string_paths(schema, defs))[path]
        where = f"{route.method} {route.path} {'.'.join(map(str, path))}"
        for name in names:
            value = INJECTIONS[name]
            body = _unique_values(with_value(working.body, path, value), schema, defs, path)
            reply = await self.requests.send(route, working.ids, working.query, body)
            self.result.count()
            if not self.standard(f"{where} = {name}", reply):
                continue
            if "\x00" in value:
                if not reply.is_error(400, "VALIDATION_ERROR"):
                    self.result.fail(f"{where} = {name}: {reply.status} (NUL must be refused)")
                continue
            if not 200 <= reply.status < 300 or not _free_text(field_schema, defs):
                continue
            for seen in (reply.json, await self.reread(route, working.ids, reply)):
                stored = value_at(seen, path) if seen is not None else None
                if stored is None:
                    continue
                self.compared += 1
                if stored != value:
                    self.result.fail(
                        f"{where} = {name}: stored as {stored!r:.120} (sent {value!r:.120})"
                    )
        # A lone surrogate cannot be text: the body is not valid JSON.
        marker = f"SURROGATE-{uuid.uuid4().hex}"
        body = _unique_values(with_value(working.body, path, marker), schema, defs, path)
        raw = orjson.dumps(body).replace(marker.encode(), b"\\ud800")
        reply = await self.requests.send(route, working.ids, working.query, body, raw=raw)
        self.result.count()
        if self.standard(f"{where} = {LONE_SURROGATE}", reply) and reply.status != 400:
            self.result.fail(f"{where} = {LONE_SURROGATE}: {reply.status} {reply.text[:200]}")

    async def route(self, route: Route, schema: dict, defs: dict, names: list[str]) -> None:
        working = await self.requests.working(route)
        last = working.replies[-1]
        # A valid request refused for what it names (a log-in with no such
        # account) still carries its text fields through validation.
        if working.index is None and (last.status in (400, 415) or last.status >= 500):
            self.result.fail(
                f"{route.method} {route.path}: no valid request to inject into "
                f"({last.status} {last.text[:200]})"
            )
            return
        for path, _ in string_paths(schema, defs):
            await self.field(route, schema, defs, working, path, names)

    async def query(self, route: Route, names: list[str]) -> None:
        """Free-text query parameters: no 5xx, standard errors."""
        if route.query is None or route.auth == "none":
            return
        schema = route.query.model_json_schema()
        texts = [
            n
            for n, p in schema.get("properties", {}).items()
            if non_null(p, {}).get("type") == "string" and _free_text(p, {})
        ]
        if not texts:
            return
        working = await self.requests.working(route)
        if working.index is None:
            return
        for name in texts:
            # A request line is at most 8190 bytes: aiohttp refuses longer ones
            # before the app sees them (docs/security.md, "Known limits").
            for injection in (n for n in names if len(INJECTIONS[n]) < 500):
                query = {**(working.query or {}), name: INJECTIONS[injection]}
                reply = await self.requests.send(route, working.ids, query, working.body)
                self.result.count()
                self.standard(f"{route.method} {route.path}?{name}= {injection}", reply)


environment = livekit_stand_in


async def run(target: Target, bounded: bool = True) -> Result:
    result = Result("injection")
    tenant = await build_tenant(target, "Injector", settle=False)
    requests = Requests(target, tenant)
    injector = Injector(target, requests, result)
    document = (await target.request("GET", "/api/openapi.json")).json
    defs = document["components"]["schemas"]
    names = BOUNDED if bounded else list(INJECTIONS)
    bodies = _routes_with_bodies(document)
    for route, schema in bodies:
        path_kinds(route.path)  # fails loudly on a path it cannot fill
        await injector.route(route, schema, defs, names)
    for route in api.routes:
        await injector.query(route, names)
    if not await target.healthy():
        result.fail("the hub is not healthy after the injections")
    result.note(
        f"{len(bodies)} JSON bodies, {len(names)} strings each in every text field, plus "
        f"free-text query parameters; {injector.compared} stored values compared byte for byte"
    )
    return result
