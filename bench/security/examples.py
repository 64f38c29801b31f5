"""Valid request bodies and queries made from the JSON Schema the route
declares, so that a route added later is attacked without anyone writing its
body by hand.

`example` makes the smallest instance (required fields, and every id field,
since ids are what cross-tenant probes are about); with `full=True` every
optional field is filled too. Ids come from a callback that is told the
field's name (`agent_id` → an agent), and a name it cannot place is an error:
the suite fails loudly rather than skipping what it does not understand.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from hypothesis import find
from hypothesis import strategies as st

from bench.security.target import ORIGIN

IdFor = Callable[[str], str]

# Strings whose meaning no schema states (a validator checks it).
NAMED = {"allowed_origins": ORIGIN, "email": "probe@example.com"}
FORMATS = {
    "email": "probe@example.com",
    "uri": "https://example.com/probe",
    "date": "2030-01-01",
    "date-time": "2030-01-01T00:00:00Z",
}


class Unfillable(Exception):
    """The schema has something the generator cannot make."""


def resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def non_null(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """The first branch of an anyOf that is not null (Optional[X] → X)."""
    schema = resolve(schema, defs)
    for branch in schema.get("anyOf", []):
        branch = resolve(branch, defs)
        if branch.get("type") != "null":
            return {**branch, **{k: v for k, v in schema.items() if k in ("default", "title")}}
    return schema


@functools.cache
def _matching(pattern: str, low: int, high: int) -> str:
    return find(st.from_regex(pattern, fullmatch=True), lambda s: low <= len(s) <= high)


def _string(schema: dict[str, Any], name: str, id_for: IdFor) -> str:
    if schema.get("format") == "uuid":
        return id_for(name)
    if name in NAMED:
        return NAMED[name]
    if schema.get("format") in FORMATS:
        return FORMATS[schema["format"]]
    default = schema.get("default")
    if isinstance(default, str) and default:
        return default
    low, high = schema.get("minLength", 1), schema.get("maxLength", 10_000)
    if "pattern" in schema:
        return _matching(schema["pattern"], low, high)
    value = "probe"
    return (value * (low // len(value) + 1))[: max(low, min(high, len(value)))]


def _number(schema: dict[str, Any]) -> float | int:
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    for bound in ("minimum", "exclusiveMinimum"):
        if bound in schema:
            value = schema[bound] + (1 if bound == "exclusiveMinimum" else 0)
            return int(value) if schema.get("type") == "integer" else value
    return 1


def example(
    schema: dict[str, Any],
    defs: dict[str, Any],
    id_for: IdFor,
    *,
    full: bool = False,
    name: str = "",
) -> Any:
    schema = non_null(schema, defs)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        default = schema.get("default")
        return default if default in schema["enum"] else schema["enum"][0]
    kind = schema.get("type")
    if kind == "string":
        return _string(schema, name, id_for)
    if kind in ("integer", "number"):
        return _number(schema)
    if kind == "boolean":
        return schema.get("default", True)
    if kind == "array":
        count = max(schema.get("minItems", 0), 1 if full else 0)
        items = schema.get("items", {})
        return [example(items, defs, id_for, full=full, name=name) for _ in range(count)]
    if kind == "object" or "properties" in schema:
        required = set(schema.get("required", []))
        body = {}
        for field, prop in schema.get("properties", {}).items():
            if field in required or full or is_id_field(prop, defs):
                body[field] = example(prop, defs, id_for, full=full, name=field)
        return body
    if not schema:
        return "probe"  # any JSON value
    raise Unfillable(f"cannot make an example of {name or 'the body'}: {schema}")


def is_id_field(schema: dict[str, Any], defs: dict[str, Any]) -> bool:
    return non_null(schema, defs).get("format") == "uuid"


def string_paths(
    schema: dict[str, Any], defs: dict[str, Any], prefix: tuple = ()
) -> list[tuple[tuple, dict[str, Any]]]:
    """Every place a free text can go: (path into the body, its schema). Lists
    are entered at index 0, free-form objects at a key named `probe`."""
    schema = non_null(schema, defs)
    kind = schema.get("type")
    if kind == "string" and "enum" not in schema and "const" not in schema:
        return [(prefix, schema)]
    if kind == "array":
        return string_paths(schema.get("items", {}), defs, (*prefix, 0))
    if kind == "object" or "properties" in schema:
        found = []
        for field, prop in schema.get("properties", {}).items():
            found += string_paths(prop, defs, (*prefix, field))
        if schema.get("additionalProperties") not in (None, False) and not schema.get("properties"):
            found.append(((*prefix, "probe"), {"type": "string"}))
        return found
    return []


def with_value(body: Any, path: tuple, value: Any) -> Any:
    """A copy of `body` with `value` at `path`, making the containers on the way."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(head, int):
        items = list(body) if isinstance(body, list) and body else [None]
        items[head] = with_value(items[head], rest, value)
        return items
    copy = dict(body) if isinstance(body, dict) else {}
    copy[head] = with_value(copy.get(head), rest, value)
    return copy


def value_at(body: Any, path: tuple) -> Any:
    for part in path:
        if isinstance(part, int):
            if not isinstance(body, list) or len(body) <= part:
                return None
        elif not isinstance(body, dict) or part not in body:
            return None
        body = body[part]
    return body
