"""The template language of workflows: `{{path.to.value}}` placeholders.

Paths start at one of ROOTS: `trigger.*`, `message.content`, `conversation.*`,
`contact.*`, `deal.*`, `vars.*` and `nodes.<id>.output.*`. A missing value
renders as an empty string. A string that is one placeholder and nothing else
keeps the value's type (a number stays a number in a webhook's JSON body).
Templates are parsed when a workflow is saved, so a typo is a 400 then rather
than a failure at run time.
"""

from __future__ import annotations

import re
from typing import Any

from hub import jsoncodec

ROOTS = ("trigger", "message", "conversation", "contact", "deal", "vars", "nodes")

_PLACEHOLDER = re.compile(r"\{\{([^{}]*)\}\}")
_PATH = re.compile(r"[A-Za-z_][\w-]*(?:\.[\w-]+)*")


class TemplateError(ValueError):
    """A template that does not parse; the message says what is wrong."""


def paths(text: str) -> list[str]:
    """The paths a template refers to; raises TemplateError when it does not parse."""
    found = []
    for match in _PLACEHOLDER.finditer(text):
        path = match.group(1).strip()
        if not _PATH.fullmatch(path):
            raise TemplateError(f"{{{{{match.group(1)}}}}} is not a path like contact.email")
        if path.split(".")[0] not in ROOTS:
            raise TemplateError(f"{path!r} must start with one of {', '.join(ROOTS)}")
        if path.startswith("nodes.") and (path.count(".") < 2 or path.split(".")[2] != "output"):
            raise TemplateError(f"{path!r}: node values are read as nodes.<id>.output...")
        found.append(path)
    rest = _PLACEHOLDER.sub("", text)
    if "{{" in rest or "}}" in rest:
        raise TemplateError("unbalanced {{ or }}")
    return found


def all_paths(value: Any) -> list[str]:
    """Every path referred to by the strings inside a JSON value."""
    if isinstance(value, str):
        return paths(value)
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in all_paths(key) + all_paths(item)]
    if isinstance(value, list):
        return [p for item in value for p in all_paths(item)]
    return []


def lookup(context: dict[str, Any], path: str) -> Any:
    value: Any = context
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit():
            index = int(part)
            value = value[index] if index < len(value) else None
        else:
            return None
        if value is None:
            return None
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return jsoncodec.dumps(value).decode()
    return str(value)


def render(text: str, context: dict[str, Any]) -> Any:
    """Fill in a template. One placeholder alone keeps its value's type."""
    whole = _PLACEHOLDER.fullmatch(text.strip())
    if whole and text.strip() == text:
        return lookup(context, whole.group(1).strip())
    return _PLACEHOLDER.sub(lambda m: _text(lookup(context, m.group(1).strip())), text)


def render_text(text: str, context: dict[str, Any]) -> str:
    return _text(render(text, context))


def render_value(value: Any, context: dict[str, Any]) -> Any:
    """Fill in every template inside a JSON value (keys too)."""
    if isinstance(value, str):
        return render(value, context)
    if isinstance(value, dict):
        return {render_text(k, context): render_value(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(item, context) for item in value]
    return value
