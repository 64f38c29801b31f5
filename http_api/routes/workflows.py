"""Workflows (seed: Workflow APIs), their executions, and the inbound webhook
trigger. The graph's checks live in hub.workflow_graph; running it is the
engine's (agents_runtime.workflows), reached through the queue — or, for a
dry run, through `services.workflows`."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, Field, StringConstraints

from http_api.routes import api
from http_api.routing import RESOURCE_ID, Call
from http_api.schemas import QueryModel, RequestModel, omittable
from hub import jsoncodec
from hub.errors import ApiError, found
from hub.inputs import JsonObject, find_nul
from hub.jobs import enqueue_committed
from hub.store import workflows as store
from hub.workflow_graph import MAX_EDGES, MAX_NODES, Schedule, TriggerType, validate
from hub.workflows import MAX_DEPTH, run_job, valid_signature

TAGS = ("workflows",)
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(max_length=2000)]
LEASE_FOR_QUEUED = 60.0  # seconds a queued run is reserved for its job
MAX_WEBHOOK_BODY = 64 * 1024

# A workflow saved without a graph starts as its trigger alone, for an editor to fill in.
LONE_TRIGGER = [{"id": "trigger", "type": "trigger", "data": {}}]


class WorkflowCreate(RequestModel):
    name: Name
    description: Description | None = None
    enabled: bool = True
    trigger_type: TriggerType
    trigger_config: dict[str, Any] = Field(default_factory=dict)
    nodes: list[dict[str, Any]] = Field(
        default_factory=lambda: list(LONE_TRIGGER), max_length=MAX_NODES
    )
    edges: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_EDGES)


class WorkflowUpdate(RequestModel):
    name: Name = omittable()
    description: Description | None = None
    enabled: bool = omittable()
    trigger_type: TriggerType = omittable()
    trigger_config: dict[str, Any] = omittable()
    nodes: list[dict[str, Any]] = omittable(max_length=MAX_NODES)
    edges: list[dict[str, Any]] = omittable(max_length=MAX_EDGES)


class Workflow(BaseModel):
    id: UUID
    company_id: UUID
    name: str
    description: str | None
    enabled: bool
    trigger_type: str
    trigger_config: dict[str, Any]
    nodes: list[dict[str, Any]]
    edges: list[dict[str, Any]]
    version: int
    # Signs outbound webhooks (X-Syntera-Signature) and verifies the inbound one.
    secret: str
    webhook_url: str | None  # the inbound trigger's path, for webhook workflows
    next_run_at: datetime | None  # schedule workflows
    created_at: datetime
    updated_at: datetime


class WorkflowList(BaseModel):
    workflows: list[Workflow]


class Deleted(BaseModel):
    id: UUID
    deleted: bool = True


class TestBody(RequestModel):
    testData: JsonObject = Field(default_factory=dict)


class Execution(BaseModel):
    id: UUID
    workflow_id: UUID
    workflow_version: int
    status: str
    test: bool
    triggered_by: str
    trigger_data: dict[str, Any]
    depth: int
    # Per node run: node_id, type, status, input, output, error, started_at, duration_ms.
    trace: list[dict[str, Any]]
    error: str | None
    resume_at: datetime | None  # waiting on a delay until then
    execution_time_ms: int
    executed_at: datetime
    finished_at: datetime | None


class TestRun(Execution):
    trigger_matched: bool  # whether the trigger's configuration accepts the test data
    variables: dict[str, Any]


class ExecutionList(BaseModel):
    executions: list[Execution]


class ExecutionQuery(QueryModel):
    limit: int = Field(10, ge=1, le=100)


class WebhookAccepted(BaseModel):
    execution_id: UUID
    duplicate: bool  # this Idempotency-Key was seen before: nothing new was started


def _view(workflow: dict[str, Any]) -> dict[str, Any]:
    webhook = workflow["trigger_type"] == "webhook"
    return {
        **workflow,
        "webhook_url": f"/public/workflows/{workflow['id']}/webhook" if webhook else None,
    }


def _next_run(fields: dict[str, Any]) -> datetime | None:
    if fields["trigger_type"] != "schedule" or not fields["enabled"]:
        return None
    return Schedule.model_validate(fields["trigger_config"]).next_after(datetime.now(UTC))


def _checked(fields: dict[str, Any]) -> dict[str, Any]:
    """The definition validated and normalised (400 pointing at the node if not)."""
    if nul := find_nul({k: fields[k] for k in ("trigger_config", "nodes", "edges")}):
        raise ApiError.validation({nul: "NUL characters are not allowed"})
    config, nodes, edges = validate(
        fields["trigger_type"], fields["trigger_config"], fields["nodes"], fields["edges"]
    )
    return {**fields, "trigger_config": config, "nodes": nodes, "edges": edges}


@api.get("/api/workflows", response=WorkflowList, tags=TAGS)
async def list_workflows(call: Call) -> dict:
    """List the company's workflows."""
    async with call.tenant() as conn:
        workflows = await store.list_all(conn, call.user.company_id)
    return {"workflows": [_view(w) for w in workflows]}


@api.post(
    "/api/workflows", body=WorkflowCreate, response=Workflow, status=201, tags=TAGS, errors=(400,)
)
async def create_workflow(call: Call) -> dict:
    """Create a workflow: a trigger and a graph of nodes and edges, checked before saving."""
    fields = _checked(call.body.model_dump())
    fields["next_run_at"] = _next_run(fields)
    async with call.tenant() as conn:
        workflow = await store.create(
            conn, call.user.company_id, fields, secret="whsec_" + secrets.token_urlsafe(32)
        )
    call.request[RESOURCE_ID] = str(workflow["id"])
    return _view(workflow)


@api.get("/api/workflows/{id}", response=Workflow, tags=TAGS)
async def get_workflow(call: Call) -> dict:
    """One workflow."""
    async with call.tenant() as conn:
        return _view(found(await store.get(conn, call.params["id"]), "Workflow"))


@api.patch("/api/workflows/{id}", body=WorkflowUpdate, response=Workflow, tags=TAGS)
async def update_workflow(call: Call) -> dict:
    """Change some of a workflow's fields; a new trigger or graph is checked as on create
    and makes a new version (executions already running keep the graph they started with)."""
    changes = call.body.model_dump(exclude_unset=True)
    async with call.tenant() as conn:
        current = found(await store.get(conn, call.params["id"]), "Workflow")
        merged = {**current, **changes}
        if {"trigger_type", "trigger_config", "nodes", "edges"} & changes.keys():
            checked = _checked(merged)
            changes.update({k: checked[k] for k in ("trigger_config", "nodes", "edges")})
        if {"trigger_type", "trigger_config", "enabled"} & changes.keys():
            changes["next_run_at"] = _next_run({**merged, **changes})
        workflow = await store.update(conn, call.params["id"], changes)
    return _view(workflow)


@api.delete("/api/workflows/{id}", roles=("owner", "admin"), response=Deleted, tags=TAGS)
async def delete_workflow(call: Call) -> dict:
    """Delete a workflow and its executions (owners and admins)."""
    async with call.tenant() as conn:
        found(await store.delete(conn, call.params["id"]), "Workflow")
    return {"id": call.params["id"]}


@api.post("/api/workflows/{id}/test", body=TestBody, response=TestRun, tags=TAGS)
async def test_workflow(call: Call) -> dict:
    """Dry run against `testData`: conditions are evaluated and actions simulated;
    nothing is written or sent. The run is recorded as an execution marked `test`."""
    engine = call.services.workflows
    if engine is None:
        raise ApiError.unavailable("The workflow engine is not running")
    async with call.tenant() as conn:
        workflow = found(await store.get(conn, call.params["id"]), "Workflow")
    return await engine.test(call.user.company_id, workflow, call.body.testData)


@api.get("/api/workflows/{id}/executions", query=ExecutionQuery, response=ExecutionList, tags=TAGS)
async def list_executions(call: Call) -> dict:
    """The workflow's latest executions, newest first, each with its per-node trace."""
    async with call.tenant() as conn:
        found(await store.get(conn, call.params["id"]), "Workflow")
        return {"executions": await store.executions(conn, call.params["id"], call.query.limit)}


@api.get("/api/workflows/{id}/executions/{execution_id}", response=Execution, tags=TAGS)
async def get_execution(call: Call) -> dict:
    """One execution."""
    async with call.tenant() as conn:
        execution = await store.get_execution(conn, call.params["id"], call.params["execution_id"])
    return found(execution, "Execution")


@api.post(
    "/api/workflows/{id}/executions/{execution_id}/cancel",
    response=Execution,
    tags=TAGS,
    errors=(409,),  # it has finished
)
async def cancel_execution(call: Call) -> dict:
    """Stop a running execution (one waiting on a delay never resumes)."""
    async with call.tenant() as conn:
        execution = await store.cancel(conn, call.params["id"], call.params["execution_id"])
        if execution is None:
            if await store.get_execution(conn, call.params["id"], call.params["execution_id"]):
                raise ApiError.conflict("The execution has finished")
            raise ApiError.not_found("Execution")
    return execution


@api.post(
    "/public/workflows/{id}/webhook",
    auth="none",
    rate_limit="ip",
    response=WebhookAccepted,
    status=202,
    tags=("public",),
    errors=(401, 404, 409, 413, 429),
)
async def inbound_webhook(call: Call) -> dict:
    """Start a webhook-triggered workflow. Sign the raw body:
    `X-Syntera-Signature: sha256=<hex HMAC-SHA256 of the body with the workflow's secret>`.
    The body is a JSON object, available as `{{trigger.*}}` (a `conversation_id`,
    `contact_id` or `deal_id` in it loads that record). An `Idempotency-Key` header
    makes a retried delivery start nothing new."""
    request = call.request
    too_large = ApiError(
        413, "PAYLOAD_TOO_LARGE", "The body is too large", {"limit": MAX_WEBHOOK_BODY}
    )
    if (request.content_length or 0) > MAX_WEBHOOK_BODY:
        raise too_large
    raw = await request.content.read(MAX_WEBHOOK_BODY + 1)
    if len(raw) > MAX_WEBHOOK_BODY:
        raise too_large
    services = call.services
    async with services.db.system() as conn:
        workflow = await store.get(conn, call.params["id"])
    if workflow is None or workflow["trigger_type"] != "webhook" or not workflow["enabled"]:
        raise ApiError.not_found("Workflow")
    if not valid_signature(workflow["secret"], raw, request.headers.get("X-Syntera-Signature")):
        raise ApiError.unauthorized("The X-Syntera-Signature does not match", "INVALID_SIGNATURE")
    # Signed deliveries count against the workflow's own limit too.
    quota = await services.limiter.hit(
        f"webhook:{workflow['id']}", services.settings.public_key_rate_limit_per_hour, 3600
    )
    if not quota.allowed:
        raise quota.refusal("Too many deliveries to this workflow")
    try:
        body = jsoncodec.loads(raw) if raw.strip() else {}
    except ValueError:
        raise ApiError.bad_request("INVALID_JSON", "The body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError.validation({"body": "must be a JSON object"})
    if nul := find_nul(body):
        raise ApiError.validation({nul: "NUL characters are not allowed"})
    # Our own outbound webhooks say how deep the run that sent them was.
    sender_depth = request.headers.get("X-Syntera-Depth", "")
    depth = int(sender_depth) + 1 if sender_depth.isdigit() and len(sender_depth) < 4 else 0
    if depth > MAX_DEPTH:
        raise ApiError.conflict(
            "Workflows started one another too many times in a row", depth=depth
        )
    key = request.headers.get("Idempotency-Key", "").strip()[:200] or uuid.uuid4().hex
    token = uuid.uuid4().hex
    company_id = workflow["company_id"]
    async with services.db.tenant(company_id) as conn:
        execution, created = await store.create_execution(
            conn,
            company_id=company_id,
            workflow=workflow,
            triggered_by="webhook",
            trigger_data=body,
            dedupe_key=f"webhook:{key}",
            depth=depth,
            token=token,
            lease_seconds=LEASE_FOR_QUEUED,
        )
        if created:
            job = run_job(company_id, execution["id"], token)
            # Lost, the run is taken over by the engine's timer once its lease expires.
            failures = services.metrics.job_enqueue_failures
            services.db.after_commit(conn, lambda: enqueue_committed(services.jobs, job, failures))
    call.request[RESOURCE_ID] = str(execution["id"])
    return {"execution_id": execution["id"], "duplicate": not created}
