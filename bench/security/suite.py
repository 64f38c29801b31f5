"""The checks of the security sweep, in the order they run, and how each gets
a hub: the sweep's base settings plus the check's own (`environment`)."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

from aiohttp.test_utils import TestClient

from bench.security import crosstenant, flood, injection, keys, tokens, uploads
from bench.security.target import Result, Target

CHECKS: dict[str, ModuleType] = {
    "cross-tenant": crosstenant,
    "jwt": tokens,
    "keys": keys,
    "flood": flood,
    "uploads": uploads,
    "injection": injection,
}
# The sweep sends thousands of requests from one address: only the flood
# check is about rate limits, and it sets its own.
BASE_SETTINGS: dict[str, Any] = {
    "rate_limit_per_hour": 10_000_000,
    "auth_rate_limit_per_hour": 10_000_000,
    "public_ip_rate_limit_per_hour": 10_000_000,
    "public_key_rate_limit_per_hour": 10_000_000,
    "socket_connects_per_minute": 100_000,
    "log_level": "WARNING",
}


async def run_check(
    check: ModuleType, start_hub: Callable[..., Awaitable[TestClient]], bounded: bool
) -> Result:
    """Runs one check on a hub `start_hub(**settings)` starts (and its caller closes)."""
    environment = getattr(check, "environment", None)
    context = environment(bounded) if environment else contextlib.nullcontext({})
    async with context as overrides:
        client = await start_hub(**{**BASE_SETTINGS, **overrides})
        return await check.run(Target.of(client), bounded)
