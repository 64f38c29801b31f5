"""Three middlewares wrap every request, REST or not.

`observe` (outermost) gives the request its id, and once a response exists,
records the audit entry of a mutating call, counts the request in /metrics
and writes its JSON log line; `stamp_headers` puts the id, the rate-limit
headers and the CORS headers on the response as it is sent. `cors` answers
browsers' preflights and decides which origins may read an answer. `errors`
turns every failure — ours, aiohttp's 404/405/413, a database outage, a
bug — into the standard `{"error", "code", "details"}` body.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

import orjson
from aiohttp import web

from http_api.routing import (
    AUDITED,
    PRINCIPAL,
    QUOTA,
    REQUEST_ID,
    RESOURCE_ID,
    ROUTE,
    authenticate,
    client_ip,
    json_response,
    rate_limit,
)
from hub.db.database import CONNECTION_ERRORS, database_unavailable
from hub.errors import ApiError
from hub.origins import normalise_origin
from hub.services import SERVICES, Services
from hub.store import audit

log = logging.getLogger("hub.http")

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

_AIOHTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}


def error_response(error: ApiError) -> web.Response:
    return json_response(error.body(), error.status, headers=error.headers)


def _from_http_exception(exc: web.HTTPException) -> ApiError:
    code = _AIOHTTP_CODES.get(exc.status, "HTTP_ERROR")
    details: dict = {}
    if exc.status == 405 and isinstance(exc, web.HTTPMethodNotAllowed):
        details["allowed"] = sorted(exc.allowed_methods)
    message = {
        404: "Not found",
        405: "Method not allowed",
        413: "The request body is too large",
    }.get(exc.status, exc.reason)
    headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
    return ApiError(exc.status, code, message, details, headers)


@web.middleware
async def errors(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        try:
            await _count_authenticated(request)
        except ApiError as limited:
            return error_response(limited)
        return error_response(_from_http_exception(exc))
    except CONNECTION_ERRORS:
        log.warning(orjson.dumps({"event": "database_unavailable"}).decode())
        return error_response(database_unavailable())
    except Exception:
        log.exception(
            orjson.dumps({"event": "unhandled_error", "request_id": request[REQUEST_ID]}).decode()
        )
        return error_response(
            ApiError(
                500,
                "INTERNAL_ERROR",
                "Something went wrong on our side",
                {"request_id": request[REQUEST_ID]},
            )
        )


async def _count_authenticated(request: web.Request) -> None:
    """A staff caller's unknown route or wrong method (aiohttp's 404/405, which
    no route handler saw) counts against their limit and carries the rate-limit
    headers like any authenticated response. A bad token leaves it the 404/405."""
    if PRINCIPAL in request or not request.headers.get("Authorization"):
        return
    services: Services = request.app[SERVICES]
    try:
        request[PRINCIPAL] = await authenticate(request, services)
    except ApiError:
        return
    await rate_limit(request, services, "user")


def _resource_id(request: web.Request) -> str | None:
    return request.get(RESOURCE_ID) or request.match_info.get("id")


async def _write_audit(request: web.Request, services: Services, status: int) -> None:
    principal = request.get(PRINCIPAL)
    if principal is None or request.method not in MUTATING or not request.get(AUDITED, True):
        return
    try:
        async with services.db.tenant(principal.company_id) as conn:
            await audit.record(
                conn,
                company_id=principal.company_id,
                user_id=principal.user_id,
                method=request.method,
                path=request.path,
                resource_id=_resource_id(request),
                status=status,
                ip=client_ip(request),
                request_id=request[REQUEST_ID],
            )
    except (ApiError, *CONNECTION_ERRORS):
        log.error(
            orjson.dumps(
                {"event": "audit_write_failed", "request_id": request[REQUEST_ID]}
            ).decode()
        )


@web.middleware
async def observe(request: web.Request, handler) -> web.StreamResponse:
    incoming = request.headers.get("X-Request-Id", "")
    request[REQUEST_ID] = incoming if _CLIENT_REQUEST_ID.match(incoming) else uuid.uuid4().hex
    started = time.perf_counter()
    response = await handler(request)
    elapsed = time.perf_counter() - started

    services: Services = request.app[SERVICES]
    await _write_audit(request, services, response.status)

    route = request.get(ROUTE) or _route_label(request)
    services.metrics.observe_request(request.method, route, response.status, elapsed)
    if log.isEnabledFor(logging.INFO):  # LOG_LEVEL=WARNING: not even built
        log.info(
            orjson.dumps(
                {
                    "event": "request",
                    "request_id": request[REQUEST_ID],
                    "method": request.method,
                    "route": route,
                    "path": request.path,
                    "status": response.status,
                    "latency_ms": round(elapsed * 1000, 2),
                }
            ).decode()
        )
    return response


async def stamp_headers(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare`: X-Request-Id and the rate-limit headers go on
    every response as its headers are sent — also on one a handler streams
    (a GDPR export), which is prepared before `observe` gets it back."""
    if REQUEST_ID in request:
        response.headers["X-Request-Id"] = request[REQUEST_ID]
    quota = request.get(QUOTA)
    if quota is not None:
        response.headers.update(quota.headers())
    _stamp_cors(request, response)


def _route_label(request: web.Request) -> str:
    # Never the raw path for unmatched requests: label cardinality stays bounded.
    resource = request.match_info.route.resource
    if resource is None:
        return "unmatched"
    return resource.canonical


_CORS_EXPOSED = (
    "X-Request-Id, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Retry-After"
)
# What a preflight may ask for: the methods the routes under each prefix
# have (tests/test_browser_clients.py checks them against the route table)
# and the request headers their clients send.
_PUBLIC_PREFLIGHT = {
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": (
        "Authorization, Content-Type, X-Conversation-Token, X-Request-Id"
    ),
    "Access-Control-Max-Age": "600",
}
STAFF_PREFLIGHT = {
    "Access-Control-Allow-Methods": "GET, POST, PUT, PATCH, DELETE",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, X-Request-Id",
    "Access-Control-Max-Age": "600",
}
# The CORS headers a response gets as it is sent (`stamp_headers`), so that
# every answer carries them: an error, a 429, a streamed export.
_CORS = web.RequestKey("cors", dict)


def _is_preflight(request: web.Request) -> bool:
    return request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers


def _add_vary(response: web.StreamResponse, name: str) -> None:
    present = [v.strip().lower() for v in response.headers.get("Vary", "").split(",") if v.strip()]
    if name.lower() not in present:
        response.headers["Vary"] = ", ".join([response.headers["Vary"], name]) if present else name


@web.middleware
async def cors(request: web.Request, handler) -> web.StreamResponse:
    """CORS, credentials-free: callers send a bearer token, never cookies.

    `/public/...`: any page may call, because the publishable key's allowed
    origins decide, per key, who may (checked in `hub.visitors`).
    `/api/...` (staff): only the origins in `CORS_ORIGINS`, none by default.
    A preflight from any other origin is a 403 `ORIGIN_NOT_ALLOWED`, which
    browsers take as a refusal; their actual requests get no CORS headers,
    so browsers keep the answers from the page. Preflights are answered here,
    before any authentication, rate limit or audit."""
    origin = request.headers.get("Origin")
    if request.path.startswith("/public/"):
        if not origin:
            return await handler(request)
        request[_CORS] = {"Access-Control-Allow-Origin": origin}
        if request.method == "OPTIONS":
            return web.Response(status=204, headers=_PUBLIC_PREFLIGHT)
        return await handler(request)
    if not request.path.startswith("/api/"):
        return await handler(request)
    allowed: tuple[str, ...] = request.app[SERVICES].settings.cors_origins
    if allowed:
        request[_CORS] = {}  # the answer depends on Origin: Vary says so to caches
    if origin and normalise_origin(origin) in allowed:
        request[_CORS] = {"Access-Control-Allow-Origin": origin}
        if _is_preflight(request):
            return web.Response(status=204, headers=STAFF_PREFLIGHT)
    elif origin and _is_preflight(request):
        return error_response(
            ApiError.origin_not_allowed(
                "This origin may not call the staff API: it is not in CORS_ORIGINS", origin
            )
        )
    return await handler(request)


def _stamp_cors(request: web.Request, response: web.StreamResponse) -> None:
    headers = request.get(_CORS)
    if headers is None:
        return
    if headers:
        response.headers.update(headers)
        response.headers["Access-Control-Expose-Headers"] = _CORS_EXPOSED
    _add_vary(response, "Origin")
