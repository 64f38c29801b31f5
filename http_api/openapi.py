"""The OpenAPI 3.1 document, generated from the route table and its models."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from http_api.routing import Route
from http_api.schemas import ErrorBody

_ERROR_STATUSES = {
    400: "Invalid input",
    401: "Missing or invalid token",
    403: "Not allowed for this role (or, public routes, from this origin)",
    404: "Not found (also for another company's ids)",
    415: "Body is not JSON",
    429: "Rate limited",
}
_PATH_PARAM = re.compile(r"{(\w+)}")


def build_document(routes: list[Route], version: str) -> dict[str, Any]:
    # Responses are documented as serialised, bodies as validated.
    keyed = [(ErrorBody, "serialization")]
    keyed += [(r.response, "serialization") for r in routes if r.response is not None]
    keyed += [(r.body, "validation") for r in routes if r.body is not None]
    refs, defs = models_json_schema(
        list(dict.fromkeys(keyed)), ref_template="#/components/schemas/{model}"
    )

    def ref(model: type[BaseModel], mode: str = "serialization") -> dict[str, Any]:
        return refs[(model, mode)]

    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        operation: dict[str, Any] = {
            "summary": route.summary.splitlines()[0] if route.summary else route.path,
            "operationId": route.handler.__name__,
            "tags": list(route.tags),
            "parameters": _parameters(route),
            "responses": _responses(route, ref),
        }
        if route.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref(route.body, "validation")}},
            }
        elif route.form:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object"}}},
            }
        if route.auth == "user":
            operation["security"] = [{"bearerAuth": []}]
        elif route.auth == "key":
            operation["security"] = [
                {"publishableKey": [], "conversationToken": []}
                if route.conversation_token
                else {"publishableKey": []}
            ]
        paths.setdefault(route.template, {})[route.method.lower()] = operation

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Syntera hub API",
            "version": version,
            "description": "Errors always have the shape {error, code, details}.",
        },
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "publishableKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An agent's publishable key, pk_...",
                },
                "conversationToken": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Conversation-Token",
                },
            },
        },
    }


def _parameters(route: Route) -> list[dict[str, Any]]:
    params = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "format": "uuid"}
            if name == "id" or name.endswith("_id")
            else {"type": "string"},
        }
        for name in _PATH_PARAM.findall(route.template)
    ]
    if route.conditional:
        params.append(
            {
                "name": "If-None-Match",
                "in": "header",
                "required": False,
                "description": "The ETag of the copy the client holds",
                "schema": {"type": "string"},
            }
        )
    if route.query is not None:
        schema = route.query.model_json_schema()
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            params.append(
                {"name": name, "in": "query", "required": name in required, "schema": prop}
            )
    return params


def _responses(route: Route, ref) -> dict[str, Any]:
    error = {"content": {"application/json": {"schema": ref(ErrorBody)}}}
    responses: dict[str, Any] = {}
    if route.websocket:
        # Refusals after the upgrade are a JSON error frame and a close code
        # (docs/voice.md), which OpenAPI has no words for.
        return {
            "101": {"description": "Switching Protocols: the WebSocket is open"},
            "400": {"description": "Not a WebSocket upgrade", **error},
        }
    if route.response is not None:
        responses[str(route.status)] = {
            "description": "Success",
            "content": {"application/json": {"schema": ref(route.response)}},
        }
    elif route.produces != "application/json":
        responses[str(route.status)] = {
            "description": "Success",
            "content": {route.produces: {"schema": {"type": "string"}}},
        }
    else:
        responses[str(route.status)] = {"description": "Success"}
    if route.conditional:
        responses["304"] = {"description": "Not Modified: If-None-Match names the current copy"}
    statuses = {429} if route.rate_limit != "none" else set()
    if route.auth == "user":
        statuses |= {401}
    if route.auth == "key":
        statuses |= {401, 403}  # no or a revoked key; a disallowed origin
    if route.roles:
        statuses |= {403}
    if route.body is not None or route.query is not None:
        statuses |= {400}
    if route.body is not None:
        statuses |= {415}
    if _PATH_PARAM.search(route.template):
        statuses |= {404}
    statuses |= set(route.errors)
    for status in sorted(statuses):
        responses[str(status)] = {"description": _ERROR_STATUSES.get(status, "Error"), **error}
    return responses
