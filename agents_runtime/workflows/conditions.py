"""Evaluating a condition node: comparisons and all/any groups.

Text comparisons: `contains` and `not_contains` ignore case (on a list they
test membership); `equals` compares numbers as numbers and text exactly;
`gt`/`gte`/`lt`/`lte` compare numbers, or ISO dates and times; anything that
cannot be compared is false. `matches` is a regular-expression search (RE2).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import re2

from hub.templates import lookup, render_value
from hub.workflow_graph import Comparison, Group

MAX_TEXT = 10_000  # what `matches` searches, at most


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _comparable(value: Any) -> float | datetime | None:
    number = _number(value)
    if number is not None:
        return number
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _equals(left: Any, right: Any) -> bool:
    a, b = _number(left), _number(right)
    if a is not None and b is not None:
        return a == b
    if isinstance(left, bool) or isinstance(right, bool):
        return _text(left).lower() == _text(right).lower()
    return left == right or _text(left) == _text(right)


def _contains(left: Any, right: Any) -> bool:
    if isinstance(left, list):
        return any(
            _equals(item, right) or _text(item).casefold() == _text(right).casefold()
            for item in left
        )
    return _text(right).casefold() in _text(left).casefold()


def _order(left: Any, right: Any, test) -> bool:
    a, b = _comparable(left), _comparable(right)
    if a is None or b is None or type(a) is not type(b):
        return False
    try:
        return test(a, b)
    except TypeError:  # an aware and a naive time
        return False


def _compare(comparison: Comparison, scope: dict[str, Any]) -> bool:
    field = comparison.field
    left = render_value(field, scope) if "{{" in field else lookup(scope, field)
    right = render_value(comparison.value, scope)
    match comparison.operator:
        case "equals":
            return _equals(left, right)
        case "not_equals":
            return not _equals(left, right)
        case "contains":
            return _contains(left, right)
        case "not_contains":
            return not _contains(left, right)
        case "gt":
            return _order(left, right, lambda a, b: a > b)
        case "gte":
            return _order(left, right, lambda a, b: a >= b)
        case "lt":
            return _order(left, right, lambda a, b: a < b)
        case "lte":
            return _order(left, right, lambda a, b: a <= b)
        case "is_empty":
            return left is None or left == "" or left == [] or left == {}
        case "exists":
            return left is not None
        case "matches":
            # RE2 runs in linear time: no pattern can stall the loop on a visitor's text.
            return re2.search(comparison.value, _text(left)[:MAX_TEXT]) is not None
    raise ValueError(f"unknown operator {comparison.operator}")


def evaluate(condition: Comparison | Group, scope: dict[str, Any]) -> bool:
    if isinstance(condition, Comparison):
        return _compare(condition, scope)
    if condition.all is not None:
        return all(evaluate(c, scope) for c in condition.all)
    return any(evaluate(c, scope) for c in condition.any or [])
