"""Property-based API testing with schemathesis against /api/openapi.json.

The hub runs on a real port in a thread of its own (schemathesis calls it
with `requests`), with a real account and an agent to find. Every generated
request must get a documented, schema-conforming answer and never a 5xx.
The number of examples per operation is bounded to keep the suite quick.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import threading
from dataclasses import dataclass

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings

from hub.app import build_app
from hub.config import Settings
from tests.fake_livekit import FakeLiveKit

EXAMPLES = 8


@dataclass
class LiveHub:
    url: str
    headers: dict[str, str]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def live_hub(database_url, tmp_root):
    from aiohttp import web

    port = _free_port()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def run(coro):
        return asyncio.run_coroutine_threadsafe(coro, loop).result(30)

    # Voice routes talk to LiveKit: the Twirp stand-in plays it, so they are
    # fuzzed for real rather than answering 503 VOICE_NOT_CONFIGURED.
    livekit = FakeLiveKit()
    run(livekit.start())
    hub_settings = Settings(
        database_url=database_url,
        jwt_secret=secrets.token_urlsafe(48),
        data_dir=tmp_root / "schemathesis",
        rate_limit_per_hour=10_000_000,
        auth_rate_limit_per_hour=10_000_000,
        public_ip_rate_limit_per_hour=10_000_000,
        log_level="WARNING",
        **livekit.settings(),
    )
    runner = web.AppRunner(build_app(hub_settings))
    run(runner.setup())
    run(web.TCPSite(runner, "127.0.0.1", port).start())
    url = f"http://127.0.0.1:{port}"
    session = requests.post(
        f"{url}/api/auth/signup",
        json={
            "email": f"fuzz-{secrets.token_hex(4)}@example.com",
            "password": "fuzzing pass",
            "company_name": "Fuzz",
        },
        timeout=10,
    ).json()
    headers = {"Authorization": f"Bearer {session['access_token']}"}
    requests.post(f"{url}/api/agents", json={"name": "Fuzzed"}, headers=headers, timeout=10)
    yield LiveHub(url, headers)
    run(runner.cleanup())
    run(livekit.close())
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def test_api_conforms(live_hub):
    document = requests.get(f"{live_hub.url}/api/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(document)
    failures = {}
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def check(case) -> None:
            # Public routes need a publishable key, which the generator cannot
            # invent: it checks their refusals; staff routes get a real token.
            headers = {} if case.path.startswith("/public") else live_hub.headers
            case.call_and_validate(
                base_url=live_hub.url,
                headers=headers,
                # Our validation is deliberately stricter than JSON Schema can say
                # (no NUL characters, bounded free-form objects), so a
                # "schema-valid" body may rightly get a 400.
                excluded_checks=[schemathesis.checks.positive_data_acceptance],
            )

        try:
            check()
        except Exception as exc:  # collect all, report together
            failures[operation.label] = str(exc)[:2000]
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
