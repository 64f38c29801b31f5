"""Operational endpoints: health, metrics, the OpenAPI document and its page."""

from __future__ import annotations

import functools
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from http_api.assets import file_asset, respond
from http_api.openapi import build_document
from http_api.routes import api
from http_api.routing import Call, json_response
from hub.gdpr import RETENTION_LOOP

DOCS_PAGE = Path(__file__).with_name("docs.html")
OPS = {"tags": ("ops",), "auth": "none", "rate_limit": "none"}


class Health(BaseModel):
    """`ok`, or `degraded` with the failing part's reason: 503 when the
    database or Redis is down, 200 when only a background loop fails."""

    model_config = ConfigDict(extra="allow")
    status: str
    database: str
    redis: str
    retention: str


def _version() -> str:
    try:
        return version("syntera-hub")
    except PackageNotFoundError:
        return "0.0.0"


@api.get("/healthz", response=Health, **OPS)
async def healthz(call: Call) -> web.Response:
    """Whether this process can serve (its database and Redis; 503 when not),
    and whether GDPR retention runs."""
    services = call.services
    checks: dict[str, str] = {}
    try:
        await services.db.ping()
        checks["database"] = "ok"
    except Exception as exc:  # any failure is "down"; the reason helps the operator
        checks["database"] = f"down: {type(exc).__name__}"
    if services.redis is None:
        checks["redis"] = "not_configured"
    else:
        try:
            await services.redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"down: {type(exc).__name__}"
    serving = all(v in ("ok", "not_configured") for v in checks.values())
    # A failing background loop is reported (status "degraded") but keeps the
    # answer 200: this process serves requests as well as before, and taking it
    # out of rotation would not mend retention (docs/deploy.md).
    checks["retention"] = services.loops.state(RETENTION_LOOP).summary()
    healthy = serving and not checks["retention"].startswith("failing")
    return json_response(
        {"status": "ok" if healthy else "degraded", **checks}, 200 if serving else 503
    )


@api.get("/metrics", produces="text/plain", **OPS)
async def metrics(call: Call) -> web.Response:
    """Prometheus metrics of this process."""
    metrics = call.services.metrics
    response = web.Response(body=metrics.render())
    response.headers["Content-Type"] = metrics.content_type
    return response


@functools.cache
def _document() -> bytes:
    # Built once, on first use, when every route module has declared its routes.
    return json_response(build_document(api.routes, _version())).body


@api.get("/api/openapi.json", **OPS)
async def openapi(call: Call) -> web.Response:
    """This document."""
    return web.Response(body=_document(), content_type="application/json")


@api.get("/api/docs", produces="text/html", conditional=True, **OPS)
async def docs(call: Call) -> web.Response:
    """The API reference page, rendered from this document."""
    return respond(call.request, file_asset(DOCS_PAGE))
