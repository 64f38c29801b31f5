"""Operational endpoints: health, metrics, the OpenAPI document and its page."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from aiohttp import web

from http_api.openapi import build_document
from http_api.routing import json_response
from hub.gdpr import RETENTION_LOOP
from hub.services import SERVICES, Services

DOCS_PAGE = Path(__file__).with_name("docs.html")


def _version() -> str:
    try:
        return version("syntera-hub")
    except PackageNotFoundError:
        return "0.0.0"


async def healthz(request: web.Request) -> web.Response:
    services: Services = request.app[SERVICES]
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


async def metrics(request: web.Request) -> web.Response:
    services: Services = request.app[SERVICES]
    response = web.Response(body=services.metrics.render())
    response.headers["Content-Type"] = services.metrics.content_type
    return response


def install(app: web.Application, routes) -> None:
    document = build_document(routes, _version())

    async def openapi(request: web.Request) -> web.Response:
        return json_response(document)

    async def docs(request: web.Request) -> web.FileResponse:
        return web.FileResponse(DOCS_PAGE)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/openapi.json", openapi)
    app.router.add_get("/api/docs", docs)
