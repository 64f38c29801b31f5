"""Property-based API testing with schemathesis against /api/openapi.json.

The hub runs on a real port in a thread of its own (schemathesis calls it
with `requests`), with a real owner's token and a company holding one of
everything (bench/security/tenants.py). Every generated request is sent twice:
as generated (random ids: mostly refusals), and with the path's ids replaced
by real, freshly made resources of that company, so that successful answers
are checked against the document too. Public routes get the company's
publishable key and the conversation token of the conversation they name.
Every answer must be documented and schema-conforming, and never a 5xx. The
number of examples per operation is bounded to keep the suite quick.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings

from agents_runtime.voice import models
from bench.cluster import free_port
from bench.security.requests import Requests, Unfillable, path_kinds
from bench.security.target import Target
from bench.security.tenants import Tenant, build_tenant
from fakes.livekit import FakeLiveKit
from fakes.serve import served
from http_api.routes import api
from http_api.routing import Route
from hub.app import build_app
from hub.config import Settings

EXAMPLES = 8


@dataclass
class LiveHub:
    url: str
    tenant: Tenant
    requests: Requests  # makes fresh resources for a route's path, on the hub's loop
    run: Callable[[Awaitable], Any]  # runs a coroutine on the hub's loop


@pytest.fixture(scope="module")
def live_hub(database_url, tmp_root):
    from aiohttp import web

    # The hub's loop runs in a thread: load the speech models on the main
    # thread first, as `serve` does (livekit registers its plugins there).
    models.load_speech()
    port = free_port()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def run(coro):
        return asyncio.run_coroutine_threadsafe(coro, loop).result(90)

    # Voice routes talk to LiveKit: the Twirp stand-in plays it, so they are
    # fuzzed for real rather than answering 503 VOICE_NOT_CONFIGURED.
    # (served on this thread's loop: pytest-aiohttp's servers live on the test's)
    voice = contextlib.AsyncExitStack()
    livekit = run(voice.enter_async_context(served(FakeLiveKit())))
    hub_settings = Settings(
        database_url=database_url,
        jwt_secret=secrets.token_urlsafe(48),
        data_dir=tmp_root / "schemathesis",
        rate_limit_per_hour=10_000_000,
        auth_rate_limit_per_hour=10_000_000,
        public_ip_rate_limit_per_hour=10_000_000,
        log_level="WARNING",
        # Signed, the Twilio webhook is fuzzed against its signature check
        # (unsigned it answers 503 VOICE_NOT_CONFIGURED to everything).
        twilio_auth_token=secrets.token_hex(16),
        **livekit.settings(),
    )
    runner = web.AppRunner(build_app(hub_settings))
    run(runner.setup())
    run(web.TCPSite(runner, "127.0.0.1", port).start())
    url = f"http://127.0.0.1:{port}"

    async def company() -> tuple[Target, Tenant]:
        target = Target(url, runner.app, aiohttp.ClientSession())
        return target, await build_tenant(target, "Fuzz", settle=False)

    target, tenant = run(company())
    yield LiveHub(url, tenant, Requests(target, tenant), run)
    run(target.session.close())
    run(runner.cleanup())
    run(voice.aclose())
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def _validate(live_hub: LiveHub, case, headers: dict[str, str]) -> None:
    case.call_and_validate(
        base_url=live_hub.url,
        headers=headers,
        # Our validation is deliberately stricter than JSON Schema can say
        # (no NUL characters, bounded free-form objects), so a
        # "schema-valid" body may rightly get a 400.
        excluded_checks=[schemathesis.checks.positive_data_acceptance],
    )


def _check(live_hub: LiveHub, route: Route, case) -> None:
    """The case as generated, then (if it names any) with real resources in its path."""
    tenant = live_hub.tenant
    headers = dict(tenant.headers if route.auth == "user" else tenant.public)
    headers["X-Conversation-Token"] = tenant.conversation.extra["token"]
    _validate(live_hub, case, headers)
    if _names_resources(route):
        ids = live_hub.run(live_hub.requests.ids(route))
        case.path_parameters = {p: r.id for p, r in ids.path.items()}
        headers["X-Conversation-Token"] = ids.credentials["conversation"].extra["token"]
        _validate(live_hub, case, headers)


def _names_resources(route: Route) -> bool:
    """Whether the path names resources that can be made fresh: not a file
    name, nor a signed link (its own probe is in bench/security/crosstenant.py)."""
    try:
        return bool(path_kinds(route.path))
    except Unfillable:
        return False


def _property(live_hub: LiveHub, route: Route, operation):
    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def check(case) -> None:
        _check(live_hub, route, case)

    return check


def test_api_conforms(live_hub):
    document = requests.get(f"{live_hub.url}/api/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(document)
    routes = {(r.method, r.template): r for r in api.routes}
    failures = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        route = routes[(operation.method.upper(), operation.path)]
        try:
            _property(live_hub, route, operation)()
        except Exception as exc:  # collect all, report together
            failures[operation.label] = str(exc)[:2000]
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
