"""The workflow engine: starts executions from triggers and runs them node by
node, durably.

An execution walks its graph in topological order: a node runs when the
trigger or a node before it led there (a condition only through the branch it
took), at most once. After each node the execution's state and trace are
saved; a node that writes to the database saves them in its own transaction.
So a run interrupted anywhere — a crash, a redelivered job, a restart during
a `delay` — resumes where it stood and repeats nothing that was recorded.

Who runs what:
- `on_event` (job `workflow.event`): a relayed domain event; runs the
  workflows whose trigger accepts it.
- `before_turn`: a visitor's message; its `message_received` workflows run
  before the AI answers (a workflow may hand off first).
- `on_run` (job `workflow.run`): one execution — started by the inbound
  webhook or a schedule, resumed after a delay, or taken over from a runner
  that died.
- `tick` (every `poll_seconds`): delays that are over, runners that died,
  schedules that are due.
- `test`: a dry run for REST; actions are simulated and nothing is written
  but the execution, marked `test`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from agents_runtime.llm import LLM
from agents_runtime.workflows.nodes import ACTIONS, NodeError, Step
from agents_runtime.workflows.triggers import accepts, load_context
from agents_runtime.workflows.webhook import WebhookSender
from hub.jobs import Job
from hub.services import Services
from hub.store import messages
from hub.store import workflows as store
from hub.workflow_graph import Graph, Schedule, Webhook, node_data
from hub.workflows import CAUSE, MAX_DEPTH, WORKFLOW_EVENT, WORKFLOW_RUN, Cause, run_job

log = logging.getLogger(__name__)


@dataclass
class EngineSettings:
    lease_seconds: float = 300.0  # longer than any node may take (webhook retries included)
    poll_seconds: float = 1.0
    webhook_backoff: float = 1.0  # before the second attempt; doubles each time
    max_steps: int = 100


class _Lost(Exception):
    """The execution stopped being ours (cancelled, or taken over)."""


def _now() -> datetime:
    return datetime.now(UTC)


def _budget(data: Any) -> float:
    if isinstance(data, Webhook):  # each attempt has the timeout, plus the backoff between
        return (data.retries + 1) * data.timeout_seconds + 2**data.retries * 2
    return data.timeout_seconds


class Engine:
    def __init__(
        self,
        services: Services,
        llm: LLM | None = None,
        settings: EngineSettings | None = None,
    ) -> None:
        self.services = services
        self.llm = llm
        self.settings = settings or EngineSettings()
        self.webhooks = WebhookSender(
            allow_private=services.settings.workflow_webhooks_allow_private,
            backoff=self.settings.webhook_backoff,
        )
        self._timers: asyncio.Task | None = None

    # --- wiring ---------------------------------------------------------------

    def install(self, llm: LLM) -> None:
        """Take the engine's jobs in this process (web in the embedded mode, workers)."""
        self.llm = llm
        self.services.jobs.handle(WORKFLOW_EVENT, self.on_event)
        self.services.jobs.handle(WORKFLOW_RUN, self.on_run)

    def start_timers(self) -> None:
        self._timers = asyncio.create_task(self._tick_forever(), name="workflow-timers")

    async def stop_timers(self) -> None:
        if self._timers is not None:
            self._timers.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timers
            self._timers = None

    async def close(self) -> None:
        """After the queue has stopped: running executions may still call webhooks."""
        await self.stop_timers()
        await self.webhooks.close()

    # --- starting executions --------------------------------------------------

    async def on_event(self, job: Job) -> None:
        payload = job.payload
        await self._trigger(
            UUID(job.company_id),
            payload["trigger"],
            payload["data"],
            dedupe_key=f"event:{payload['event_id']}",
            depth=payload["depth"],
        )

    async def before_turn(self, job: Job) -> None:
        """Run the `message_received` workflows of the visitor message a turn answers."""
        company_id = UUID(job.company_id)
        message_id = UUID(job.payload["message_id"])
        async with self.services.db.tenant(company_id) as conn:
            if not await store.enabled_for(conn, company_id, "message_received"):
                return
            message = await messages.get(conn, message_id)
        if message is None:
            return
        data = {"message": message, "conversation_id": job.payload["conversation_id"]}
        await self._trigger(
            company_id, "message_received", data, dedupe_key=f"message:{message_id}", depth=0
        )

    async def _trigger(
        self, company_id: UUID, trigger_type: str, data: dict, *, dedupe_key: str, depth: int
    ) -> None:
        """Start (or find again) an execution of every workflow whose trigger
        accepts this, then run them one after another."""
        token = uuid.uuid4().hex
        runs = []
        async with self.services.db.tenant(company_id) as conn:
            workflows = await store.enabled_for(conn, company_id, trigger_type)
            if not workflows:
                return
            context = await load_context(conn, trigger_type, data)
            for workflow in workflows:
                if accepts(workflow, context):
                    execution = await self._start(
                        conn, company_id, workflow, context, token, depth, dedupe_key
                    )
                    if execution is not None:
                        runs.append((workflow, execution))
        for workflow, execution in runs:
            await self._execute(company_id, workflow, execution, token)

    async def _start(
        self,
        conn,
        company_id: UUID,
        workflow: dict,
        context: dict,
        token: str,
        depth: int,
        dedupe_key: str,
    ) -> dict | None:
        """The execution to run now, leased to `token`; None when there is none
        (finished before, running elsewhere, or refused at the depth limit)."""
        too_deep = depth > MAX_DEPTH
        execution, created = await store.create_execution(
            conn,
            company_id=company_id,
            workflow=workflow,
            triggered_by=workflow["trigger_type"],
            trigger_data=context["trigger"],
            dedupe_key=dedupe_key,
            depth=depth,
            token=token,
            lease_seconds=self.settings.lease_seconds,
            state=fresh_state(context),
            status="failed" if too_deep else "running",
            error=(
                f"stopped at the depth limit: workflows started one another {depth} times "
                f"(at most {MAX_DEPTH}); does a node of this workflow fire its own trigger?"
                if too_deep
                else None
            ),
        )
        if too_deep:
            log.warning('{"event":"workflow_depth_limit","workflow_id":"%s"}', workflow["id"])
            return None
        if created:
            return execution
        # Seen before: finished, running elsewhere, or left by a runner that died.
        return await store.claim(conn, execution["id"], token, self.settings.lease_seconds)

    async def on_run(self, job: Job) -> None:
        company_id = UUID(job.company_id)
        token = job.payload["token"]
        async with self.services.db.tenant(company_id) as conn:
            execution = await store.claim(
                conn, UUID(job.payload["execution_id"]), token, self.settings.lease_seconds
            )
            if execution is None:
                return
            workflow = await store.get(conn, execution["workflow_id"])
            if not execution["state"].get("context"):  # started by a webhook or a schedule
                execution["state"] = fresh_state(
                    await load_context(conn, execution["triggered_by"], execution["trigger_data"])
                )
        await self._execute(company_id, workflow, execution, token)

    # --- running --------------------------------------------------------------

    async def _execute(self, company_id: UUID, workflow: dict, execution: dict, token: str) -> None:
        run = _Run(self, company_id, workflow, execution, token, simulate=False)
        if not workflow["enabled"]:
            await run.finish("cancelled", error="the workflow was disabled")
            return
        cause = CAUSE.set(Cause(str(execution["id"]), str(workflow["id"]), execution["depth"]))
        try:
            await run.walk()
        except _Lost:
            log.info('{"event":"workflow_execution_lost","id":"%s"}', execution["id"])
        finally:
            CAUSE.reset(cause)

    async def test(
        self, company_id: UUID, workflow: dict[str, Any], test_data: dict[str, Any]
    ) -> dict[str, Any]:
        trigger_type = workflow["trigger_type"]
        async with self.services.db.tenant(company_id) as conn:
            context = await load_context(conn, trigger_type, test_data)
        execution = {
            "id": uuid.uuid4(),
            "graph": {"nodes": workflow["nodes"], "edges": workflow["edges"]},
            "state": fresh_state(context),
            "trace": [],
            "execution_time_ms": 0,
            "depth": 0,
        }
        run = _Run(self, company_id, workflow, execution, token="", simulate=True)
        run.matched = accepts(workflow, context)
        if run.matched:
            await run.walk()
        async with self.services.db.tenant(company_id) as conn:
            stored, _ = await store.create_execution(
                conn,
                company_id=company_id,
                workflow=workflow,
                triggered_by=trigger_type,
                trigger_data=test_data,
                dedupe_key=None,
                depth=0,
                token=None,
                lease_seconds=0,
                state=run.state,
                trace=run.trace,
                test=True,
                status=run.status,
                error=run.error,
                execution_time_ms=run.active_ms,
            )
        return {**stored, "trigger_matched": run.matched, "variables": run.state["vars"]}

    # --- timers ---------------------------------------------------------------

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.poll_seconds)
            try:
                await self.tick()
            except Exception:
                log.exception('{"event":"workflow_timers_failed"}')

    async def tick(self) -> int:
        """Queue what is due; returns how many executions were queued."""
        token = uuid.uuid4().hex
        lease = self.settings.lease_seconds
        db = self.services.db
        async with db.system() as conn:
            due = await store.wake_due(conn, token, lease)
            due += await store.take_stalled(conn, token, lease)
            for workflow in await store.due_schedules(conn):
                schedule = Schedule.model_validate(workflow["trigger_config"])
                await store.set_next_run(conn, workflow["id"], schedule.next_after(_now()))
                scheduled_for = workflow["next_run_at"].isoformat()
                execution, created = await store.create_execution(
                    conn,
                    company_id=workflow["company_id"],
                    workflow=workflow,
                    triggered_by="schedule",
                    trigger_data={"scheduled_for": scheduled_for},
                    dedupe_key=f"schedule:{scheduled_for}",
                    depth=0,
                    token=token,
                    lease_seconds=lease,
                )
                if created:
                    due.append({"id": execution["id"], "company_id": workflow["company_id"]})
        for row in due:
            await self.services.jobs.enqueue(run_job(row["company_id"], row["id"], token))
        return len(due)


def fresh_state(context: dict[str, Any]) -> dict[str, Any]:
    return {"context": context, "vars": {}, "outputs": {}, "done": [], "branches": {}}


class _Run:
    """One pass over an execution's graph."""

    def __init__(
        self,
        engine: Engine,
        company_id: UUID,
        workflow: dict,
        execution: dict,
        token: str,
        *,
        simulate: bool,
    ) -> None:
        self.engine = engine
        self.company_id = company_id
        self.workflow = workflow
        self.execution_id = execution["id"]
        self.graph = Graph(execution["graph"]["nodes"], execution["graph"]["edges"])
        self.state = execution["state"]
        self.trace: list[dict] = list(execution["trace"])
        self.active_ms = execution["execution_time_ms"]
        self.token = token
        self.simulate = simulate
        self.matched = True
        self.status = "running"
        self.error: str | None = None

    @property
    def db(self):
        return self.engine.services.db

    def _reached(self, node_id: str) -> bool:
        if node_id == self.graph.trigger:
            return True
        done, branches = self.state["done"], self.state["branches"]
        return any(
            edge["source"] in done
            and (
                edge["source"] not in branches
                or edge.get("sourceHandle") == branches[edge["source"]]
            )
            for edge in self.graph.incoming[node_id]
        )

    async def walk(self) -> None:
        steps = 0
        for node_id in self.graph.order:
            if node_id in self.state["done"] or not self._reached(node_id):
                continue
            steps += 1
            if steps > self.engine.settings.max_steps:
                await self.finish("failed", error="stopped at the step limit")
                return
            node = self.graph.nodes[node_id]
            outcome = await self._node(node)
            if outcome == "failed":
                return
            if outcome in ("waiting", "ended"):
                if outcome == "ended":
                    await self.finish("success")
                return
        await self.finish("success")

    async def _node(self, node: dict) -> str:
        """Run one node; returns ok, failed, waiting (a delay) or ended."""
        node_id, node_type = node["id"], node["type"]
        started = time.perf_counter()
        entry: dict[str, Any] = {"node_id": node_id, "type": node_type, "started_at": _now()}
        data = node_data(node)
        budget = _budget(data)
        try:
            if node_type == "delay":
                output = self._delay(data)
            else:
                step = Step(
                    services=self.engine.services,
                    llm=self.engine.llm,
                    webhooks=self.engine.webhooks,
                    company_id=self.company_id,
                    workflow=self.workflow,
                    execution_id=str(self.execution_id),
                    node_id=node_id,
                    data=data,
                    state=self.state,
                    conn=None,
                    simulate=self.simulate,
                )
                entry["input"] = _inputs(step)
                output = await asyncio.wait_for(self._act(step, entry, started), budget)
            entry.update(status="success", output=output)
        except _Lost:
            raise
        except NodeError as exc:
            entry.update(status="failed", error=str(exc))
            if exc.details:
                entry["output"] = exc.details
        except TimeoutError:
            entry.update(status="failed", error=f"timed out after {budget:g} s")
        except Exception as exc:
            log.exception('{"event":"workflow_node_crashed","node":"%s"}', node_id)
            entry.update(status="failed", error=f"{type(exc).__name__}: {exc}"[:500])

        if not entry.pop("saved", False):
            self._record(entry, started)
            if entry["status"] == "failed" and data.on_error == "stop":
                await self.finish("failed", error=f"node {node_id} ({node_type}): {entry['error']}")
                return "failed"
            if node_type == "delay" and not self.simulate:
                await self.finish("running", resume_at=datetime.fromisoformat(output["resume_at"]))
                return "waiting"
            action = ACTIONS.get(node_type)  # a delay has none: it parks the run instead
            if action is None or not action.replayable:
                await self._save()
        return "ended" if node_type == "end" else "ok"

    async def _act(self, step: Step, entry: dict, started: float) -> dict[str, Any]:
        action = ACTIONS[entry["type"]]
        if not action.writes or self.simulate:
            return await action.run(step)
        # The change and the record of it commit together, or neither does.
        before = copy.deepcopy(self.state), len(self.trace), self.active_ms
        try:
            async with self.db.tenant(self.company_id) as conn:
                if not await store.lock_owned(conn, self.execution_id, self.token):
                    raise _Lost()
                step.conn = conn
                output = await action.run(step)
                entry.update(status="success", output=output)
                self._record(entry, started)
                await self._save(conn)
        except BaseException:
            self.state, trace_length, self.active_ms = before
            step.state = self.state
            del self.trace[trace_length:]
            raise
        entry["saved"] = True
        return output

    def _delay(self, data: Any) -> dict[str, Any]:
        if self.simulate:
            return {"simulated": True, "would_wait_seconds": data.duration}
        return {"resume_at": (_now() + timedelta(seconds=data.duration)).isoformat()}

    def _record(self, entry: dict, started: float) -> None:
        entry["duration_ms"] = round((time.perf_counter() - started) * 1000, 2)
        self.active_ms += round(entry["duration_ms"])
        self.trace.append(entry)
        node_id, output = entry["node_id"], entry.get("output")
        self.state["done"].append(node_id)
        self.state["outputs"][node_id] = output if entry["status"] == "success" else None
        if entry["type"] == "condition":  # a failed condition (continuing) goes on by "no"
            self.state["branches"][node_id] = (output or {}).get("branch", "no")

    async def _save(self, conn=None) -> None:
        if self.simulate:
            return
        if conn is None:
            async with self.db.tenant(self.company_id) as own:
                return await self._save(own)
        saved = await store.save_progress(
            conn,
            self.execution_id,
            self.token,
            state=self.state,
            trace=self.trace,
            active_ms=self.active_ms,
            lease_seconds=self.engine.settings.lease_seconds,
        )
        if not saved:
            raise _Lost()

    async def finish(
        self, status: str, *, error: str | None = None, resume_at: datetime | None = None
    ) -> None:
        self.status, self.error = status, error
        if self.simulate:
            return
        async with self.db.tenant(self.company_id) as conn:
            finished = await store.finish(
                conn,
                self.execution_id,
                self.token,
                status=status,
                state=self.state,
                trace=self.trace,
                active_ms=self.active_ms,
                error=error,
                resume_at=resume_at,
            )
        if finished is None:
            raise _Lost()


def _inputs(step: Step) -> dict[str, Any]:
    """The node's parameters with its templates filled in, for the trace."""
    params = step.data.model_dump(exclude={"on_error", "timeout_seconds"}, exclude_none=True)
    try:
        return step.render(params)
    except Exception:
        return params
