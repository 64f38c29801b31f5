"""The route table: every HTTP route declared once with what it takes and gives.

A declaration carries its auth, its request and response models and its
status; the same declaration drives the aiohttp handler (authenticate, rate
limit, parse, validate, call, serialise) and the OpenAPI document, so the
document cannot drift from what the server does. REST resources, pages,
operational endpoints, webhooks and WebSocket upgrades are all declared this
way; only Socket.IO's own endpoint is mounted by python-socketio
(http_api.realtime, docs/realtime.md).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from hub import jsoncodec
from hub.addresses import client_address
from hub.auth import Principal
from hub.errors import ApiError
from hub.inputs import find_nul, validated, validation_fields
from hub.ratelimit import Quota
from hub.services import SERVICES, Services
from hub.visitors import (
    ConversationGrant,
    PublishableKey,
    resolve_key,
    verify_conversation_token,
)

# "user": a staff JWT; "key": a publishable key (public routes); "none": nobody.
Auth = Literal["user", "key", "none"]

# What a request carries between the middlewares and the handler.
REQUEST_ID = web.RequestKey("request_id", str)
PRINCIPAL = web.RequestKey("principal", Principal)
QUOTA = web.RequestKey("quota", Quota)
ROUTE = web.RequestKey("route", str)
RESOURCE_ID = web.RequestKey("resource_id", str)
AUDITED = web.RequestKey("audited", bool)
CLIENT_IP = web.RequestKey("client_ip", str)


def client_ip(request: web.Request) -> str:
    """The caller's address (hub.addresses): per-IP limits and the audit log use it."""
    if CLIENT_IP not in request:
        request[CLIENT_IP] = client_address(
            request.remote,
            ",".join(request.headers.getall("X-Forwarded-For", [])),
            request.app[SERVICES].settings.trusted_proxies,
        )
    return request[CLIENT_IP]


def public_base(request: web.Request) -> str:
    """The hub's address as its users reach it: PUBLIC_URL when set (behind a
    proxy that ends TLS), else the scheme and Host this request came with."""
    settings = request.app[SERVICES].settings
    if settings.public_url:
        return settings.public_url.rstrip("/")
    return f"{request.scheme}://{request.host}"


def visitor_metadata(request: web.Request, source: str) -> dict[str, Any]:
    """What a visitor's new conversation records of where it came from."""
    return {
        "source": source,
        "origin": request.headers.get("Origin"),
        "ip_address": client_ip(request),
        "user_agent": request.headers.get("User-Agent", "")[:300],
    }


@dataclass
class Call:
    """What a handler receives: the request, who made it, and its validated input."""

    request: web.Request
    services: Services
    principal: Principal | None
    params: dict[str, Any]
    body: Any = None
    query: Any = None
    key: PublishableKey | None = None
    grant: ConversationGrant | None = None

    @property
    def user(self) -> Principal:
        assert self.principal is not None, "route declared without auth"
        return self.principal

    @property
    def visitor(self) -> ConversationGrant:
        assert self.grant is not None, "route declared without a conversation token"
        return self.grant

    def tenant(self):
        """The tenant transaction of the caller's company."""
        return self.services.db.tenant(self.user.company_id)

    def read(self):
        """The caller's company's rows without a transaction (`Database.read`):
        for a handler that only reads, one statement at a time."""
        return self.services.db.read(self.user.company_id)


Handler = Callable[[Call], Awaitable[Any]]
_REGEX_PARAM = re.compile(r"{(\w+):[^}]+}")


@dataclass
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    tags: tuple[str, ...]
    auth: Auth = "user"
    roles: tuple[str, ...] = ()
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    # "ip": per client address only (a route with no key or user, e.g. an inbound
    # webhook); "none": not counted (health checks, pages, sockets that count
    # their own connection attempts).
    rate_limit: Literal["user", "auth_ip", "public", "ip", "none"] = "user"
    # Public conversation routes also need X-Conversation-Token for the path's {id}.
    conversation_token: bool = False
    # A POST that changes nothing (a search) stays out of the audit log.
    audited: bool = True
    errors: tuple[int, ...] = field(default_factory=tuple)
    # What a success carries when the handler answers itself (a page, TwiML).
    produces: str = "application/json"
    # The body is a form (a webhook's), which the handler reads itself.
    form: bool = False
    # A WebSocket upgrade: the handler returns the upgraded socket.
    websocket: bool = False
    # Answers with an ETag, and 304 to an If-None-Match naming it (http_api.assets).
    conditional: bool = False

    @property
    def template(self) -> str:
        """The path as OpenAPI writes it: aiohttp's `{name:regex}` is `{name}`."""
        return _REGEX_PARAM.sub(r"{\1}", self.path)


def json_response(payload: Any, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(
        body=jsoncodec.dumps(payload),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _path_params(request: web.Request) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, raw in request.match_info.items():
        if name == "id" or name.endswith("_id"):
            try:
                params[name] = UUID(raw)
            except ValueError:
                # An id that cannot exist is simply not found.
                raise ApiError.not_found() from None
        else:
            params[name] = raw
    return params


async def _read_body(request: web.Request, model: type[BaseModel]) -> BaseModel:
    if request.content_type != "application/json":
        raise ApiError(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            "Send the body as application/json",
            {"content_type": request.content_type},
        )
    raw = await request.read()
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError.bad_request(
            "INVALID_JSON", "The body is not valid JSON", reason=str(exc)
        ) from None
    # As Socket.IO payloads are: strictly, "0.7" is not a temperature.
    return validated(model, parsed, raw)


def _read_query(request: web.Request, model: type[BaseModel]) -> BaseModel:
    # Only the parameters the route declares: any other (a browser's cache
    # buster) is ignored, as a route without a query model ignores them all.
    query = {name: request.query[name] for name in model.model_fields if name in request.query}
    if nul := find_nul(query):
        raise ApiError.validation({nul: "NUL characters are not allowed"})
    try:
        return model.model_validate(query)
    except ValidationError as exc:
        raise ApiError.validation(validation_fields(exc)) from None


async def authenticate(request: web.Request, services: Services) -> Principal:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError.unauthorized()
    return await services.authenticate(token.strip())


async def rate_limit(
    request: web.Request, services: Services, kind: str, key: PublishableKey | None = None
) -> None:
    """Count the request against its limits (`kind`: a route's `rate_limit`)
    and keep the quota for the response headers; 429 when one is exhausted."""
    settings = services.settings
    if kind == "auth_ip":
        limits = [(f"ip:{client_ip(request)}:auth", settings.auth_rate_limit_per_hour)]
    elif kind == "ip":
        limits = [(f"ip:{client_ip(request)}:public", settings.public_ip_rate_limit_per_hour)]
    elif kind == "public":
        # Per key, so one site cannot exhaust the hub; per IP, so one visitor
        # cannot exhaust the site's key.
        assert key is not None
        limits = [
            (f"ip:{client_ip(request)}:public", settings.public_ip_rate_limit_per_hour),
            (f"key:{key.id}", settings.public_key_rate_limit_per_hour),
        ]
    else:
        principal = request[PRINCIPAL]
        limits = [(f"user:{principal.user_id}", settings.rate_limit_per_hour)]
    for name, limit in limits:
        quota = await services.limiter.hit(name, limit, 3600)
        if not quota.allowed:
            break
    request[QUOTA] = quota
    if not quota.allowed:
        raise quota.refusal()


def _conversation_grant(request: web.Request, services: Services, call: Call) -> ConversationGrant:
    grant = verify_conversation_token(
        services.settings, request.headers.get("X-Conversation-Token")
    )
    # The token grants its own conversation only, reached through its own agent's key.
    if grant.conversation_id != call.params.get("id") or (
        call.key is not None and grant.agent_id != call.key.agent_id
    ):
        raise ApiError.not_found("Conversation")
    return grant


def make_handler(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        services: Services = request.app[SERVICES]
        request[ROUTE] = route.path
        request[AUDITED] = route.audited
        principal = key = None
        if route.auth == "user":
            principal = await authenticate(request, services)
            request[PRINCIPAL] = principal
        elif route.auth == "key":
            key = await resolve_key(
                services.db, request.headers.get("Authorization"), request.headers.get("Origin")
            )
        if route.rate_limit != "none":
            await rate_limit(request, services, route.rate_limit, key)
        if route.roles and principal is not None and not principal.can(*route.roles):
            raise ApiError.forbidden(f"This needs the role {' or '.join(route.roles)}")
        call = Call(request, services, principal, _path_params(request), key=key)
        if route.conversation_token:
            call.grant = _conversation_grant(request, services, call)
        if route.query is not None:
            call.query = _read_query(request, route.query)
        if route.body is not None:
            call.body = await _read_body(request, route.body)
        result = await route.handler(call)
        if isinstance(result, web.StreamResponse):
            return result
        if result is None:
            return web.Response(status=204)
        if route.response is not None:
            result = route.response.model_validate(result).model_dump(mode="json")
        return json_response(result, route.status)

    return handle


class Api:
    """Collects route declarations; `install` puts them on an aiohttp app."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def route(self, method: str, path: str, **options: Any) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            summary = options.pop("summary", None) or (handler.__doc__ or "").strip()
            self.routes.append(Route(method, path, handler, summary=summary, **options))
            return handler

        return register

    def get(self, path: str, **options: Any):
        return self.route("GET", path, **options)

    def post(self, path: str, **options: Any):
        return self.route("POST", path, **options)

    def patch(self, path: str, **options: Any):
        return self.route("PATCH", path, **options)

    def delete(self, path: str, **options: Any):
        return self.route("DELETE", path, **options)

    def install(self, app: web.Application) -> None:
        for route in self.routes:
            app.router.add_route(route.method, route.path, make_handler(route))
