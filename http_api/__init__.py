"""REST: route declarations per resource, pydantic schemas, middleware, OpenAPI."""

from aiohttp import web

from http_api import ops
from http_api.middleware import cors, errors, observe, stamp_headers
from http_api.routes import api, public

MIDDLEWARES = (cors, observe, errors)


def install(app: web.Application) -> None:
    app.on_response_prepare.append(stamp_headers)
    api.install(app)
    ops.install(app, api.routes)
    # A file download, not a JSON route: the signed link is its permission.
    app.router.add_get("/public/attachments/{id}/{sig}", public.public_attachment)


__all__ = ["MIDDLEWARES", "install"]
