"""Operations: errors everywhere in the standard shape, request ids, health,
metrics, JSON logs and the generated OpenAPI document."""

from __future__ import annotations

import json
import logging

from openapi_spec_validator import validate

from hub.app import build_app
from hub.services import SERVICES
from tests.helpers import assert_error


async def test_unknown_route_and_wrong_method(client):
    missing = await client.get("/api/nothing-here")
    assert missing.status == 404
    assert_error(await missing.json(), "NOT_FOUND")
    assert missing.headers["X-Request-Id"]

    wrong = await client.put("/api/agents", json={})
    assert wrong.status == 405
    body = await wrong.json()
    assert_error(body, "METHOD_NOT_ALLOWED")
    assert body["details"]["allowed"] == ["GET", "POST"]


async def test_request_ids(client):
    first = await client.get("/healthz")
    second = await client.get("/healthz")
    assert first.headers["X-Request-Id"] != second.headers["X-Request-Id"]
    echoed = await client.get("/healthz", headers={"X-Request-Id": "trace-abc-123"})
    assert echoed.headers["X-Request-Id"] == "trace-abc-123"
    # Anything that could poison a log line is replaced, not echoed.
    odd = await client.get("/healthz", headers={"X-Request-Id": "bad id\twith spaces"})
    assert odd.headers["X-Request-Id"] != "bad id\twith spaces"


async def test_unexpected_error_is_a_500_with_request_id_and_no_trace(
    base_settings, aiohttp_client
):
    app = build_app(base_settings)

    async def boom(request):
        raise RuntimeError("secret internals /etc/passwd")

    app.router.add_get("/boom", boom)
    client = await aiohttp_client(app)
    response = await client.get("/boom")
    assert response.status == 500
    text = await response.text()
    body = json.loads(text)
    assert_error(body, "INTERNAL_ERROR")
    assert body["details"]["request_id"] == response.headers["X-Request-Id"]
    assert "secret internals" not in text and "Traceback" not in text


async def test_health(client, make_client, redis_url):
    response = await client.get("/healthz")
    assert response.status == 200
    body = await response.json()
    assert body.pop("retention") in ("ok", "not_run")  # run at start-up, in the background
    assert body == {"status": "ok", "database": "ok", "redis": "not_configured"}

    with_redis = await make_client(redis_url=redis_url)
    assert (await (await with_redis.get("/healthz")).json())["redis"] == "ok"

    # Redis configured but gone: the hub still serves, and says it is degraded.
    hub = await make_client(redis_url=redis_url)
    redis = hub.app[SERVICES].redis
    await redis.connection_pool.disconnect()
    redis.connection_pool.connection_kwargs["port"] = 1  # nothing listens there
    # Pooled connections keep the port they were made with: new ones only.
    redis.connection_pool.reset()
    degraded = await hub.get("/healthz")
    assert degraded.status == 503
    body = await degraded.json()
    assert body["status"] == "degraded" and body["redis"].startswith("down")


async def test_metrics_count_requests_by_route(client, account):
    await client.get("/api/agents", headers=account.headers)
    await client.get("/api/agents/not-a-uuid", headers=account.headers)
    text = await (await client.get("/metrics")).text()
    assert 'http_requests_total{method="GET",route="/api/agents",status="200"}' in text
    assert 'route="/api/agents/{id}",status="404"' in text
    assert "http_request_duration_seconds_bucket" in text


async def test_one_json_log_line_per_request(client, caplog):
    with caplog.at_level(logging.INFO, logger="hub.http"):
        response = await client.get("/healthz", headers={"X-Request-Id": "log-line-test-1"})
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "hub.http"]
    [line] = [entry for entry in lines if entry.get("request_id") == "log-line-test-1"]
    assert line["status"] == response.status and line["route"] == "/healthz"
    assert line["latency_ms"] >= 0


async def test_openapi_document_is_valid_and_complete(client):
    document = await (await client.get("/api/openapi.json")).json()
    validate(document)
    assert document["openapi"].startswith("3.1")
    operations = {
        (method.upper(), path) for path, ops in document["paths"].items() for method in ops
    }
    for expected in [
        ("POST", "/api/auth/signup"),
        ("POST", "/api/auth/login"),
        ("GET", "/api/auth/me"),
        ("POST", "/api/agents"),
        ("GET", "/api/agents"),
        ("GET", "/api/agents/{id}"),
        ("PATCH", "/api/agents/{id}"),
        ("DELETE", "/api/agents/{id}"),
        ("GET", "/api/audit-log"),
    ]:
        assert expected in operations
    create = document["paths"]["/api/agents"]["post"]
    assert "201" in create["responses"] and "400" in create["responses"]
    schema_name = create["requestBody"]["content"]["application/json"]["schema"]["$ref"].split("/")[
        -1
    ]
    agent_schema = document["components"]["schemas"][schema_name]
    assert agent_schema["properties"]["temperature"]["maximum"] == 2
    assert agent_schema["additionalProperties"] is False

    page = await client.get("/api/docs")
    assert page.status == 200 and "openapi.json" in await page.text()


async def test_index_page(client):
    response = await client.get("/")
    assert response.status == 200
    assert "/api/docs" in await response.text()
