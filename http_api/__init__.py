"""REST: route declarations per resource, pydantic schemas, middleware, OpenAPI."""

from aiohttp import web

from http_api import ops
from http_api.middleware import errors, observe
from http_api.routes import api

MIDDLEWARES = (observe, errors)


def install(app: web.Application) -> None:
    api.install(app)
    ops.install(app, api.routes)


__all__ = ["MIDDLEWARES", "install"]
