"""The workflow engine: starts executions from triggers and runs them node by
node, durably.

An execution walks its graph in topological order: a node runs when the
trigger or a node before it led there (a condition only through the branch it
took), at most once. What a run has done is saved as it goes; a node that
writes to the database saves it in its own transaction. So a run interrupted
anywhere — a crash, a redelivered job, a restart during a `delay` — resumes
where it stood and repeats nothing that was recorded.

A running execution is leased to one runner. A job carries a token that lets
its runner take the lease once; the runner then holds it under a token of
its own, renewed at every save (and so before every node that reaches
outside), and a lease that expires is taken over by the timer. The lease is
longer than any one node may take.

Who runs what:
- `on_event` (job `workflow.event`): an event from the outbox; runs the
  workflows whose trigger accepts it.
- `before_turn`: a visitor's message; its `message_received` workflows run
  before the AI answers (a workflow may hand off first).
- `on_run` (job `workflow.run`): one execution — started by the inbound
  webhook or a schedule, resumed after a delay, or taken over from a runner
  that died.
- `tick` (every `poll_seconds`): delays that are over, runners that died,
  schedules that are due, outbox events whose job was lost.
- `test`: a dry run for REST; actions are simulated and nothing is written
  but the execution, marked `test`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from agents_runtime.llm import LLM
from agents_runtime.workflows.nodes import ACTIONS, NodeError, Step
from agents_runtime.workflows.triggers import accepts, load_context
from agents_runtime.workflows.webhook import WebhookSender
from hub import jsoncodec
from hub.jobs import Job, enqueue_committed
from hub.services import Core
from hub.store import messages
from hub.store import workflows as store
from hub.workflow_graph import LEASE_SECONDS, Graph, Schedule, node_data
from hub.workflows import (
    CAUSE,
    MAX_DEPTH,
    WORKFLOW_EVENT,
    WORKFLOW_RUN,
    Cause,
    event_job,
    run_job,
)

log = logging.getLogger(__name__)

# Nothing is retried for ever (docs/workflows.md, "Failures that repeat"):
MAX_TAKEOVERS = 2  # an execution whose runner stopped once more after this many takeovers fails
MAX_EVENT_ATTEMPTS = 3  # an outbox event queued again this often and still there fails

MAX_TRACE_VALUE = 16 * 1024  # bytes of JSON a trace entry keeps of a node's input or output

# What `load` gives `_trigger`: trigger type, trigger data, dedupe key, depth.
Trigger = tuple[str, dict[str, Any], str, int]


@dataclass
class EngineSettings:
    lease_seconds: float = LEASE_SECONDS
    poll_seconds: float = 1.0
    outbox_retry_seconds: float = 30.0


class _Lost(Exception):
    """The execution stopped being ours (cancelled, or taken over)."""


def _now() -> datetime:
    return datetime.now(UTC)


def fresh_state(context: dict[str, Any]) -> dict[str, Any]:
    return {"context": context, "vars": {}, "outputs": {}, "done": [], "branches": {}}


class Engine:
    def __init__(
        self,
        services: Core,
        llm: LLM | None = None,
        settings: EngineSettings | None = None,
    ) -> None:
        self.services = services
        self.llm = llm
        self.settings = settings or EngineSettings()
        self.webhooks = WebhookSender(
            allow_private=services.settings.workflow_webhooks_allow_private
        )
        self._timers: asyncio.Task | None = None

    # --- wiring ---------------------------------------------------------------

    def install(self, llm: LLM) -> None:
        """Take the engine's jobs in this process (web in the embedded mode, workers)."""
        self.llm = llm
        self.services.jobs.handle(WORKFLOW_EVENT, self.on_event)
        self.services.jobs.handle(WORKFLOW_RUN, self.on_run)
        self.services.jobs.on_dead_letter(WORKFLOW_EVENT, self._event_dead)

    def start_timers(self) -> None:
        self._timers = asyncio.create_task(
            self.services.loops.run("workflow_timers", self.settings.poll_seconds, self.tick),
            name="workflow-timers",
        )

    async def stop_timers(self) -> None:
        if self._timers is not None:
            self._timers.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timers
            self._timers = None

    async def close(self) -> None:
        """After the queue has stopped: running executions may still call
        webhooks. The LLM it was installed with goes too: the process's agent
        work (turns and workflows, `agents_runtime.runtime.install`) is over."""
        await self.stop_timers()
        await self.webhooks.close()
        if self.llm is not None:
            await self.llm.aclose()

    # --- starting executions --------------------------------------------------

    async def on_event(self, job: Job) -> None:
        async def take(conn: asyncpg.Connection) -> Trigger | None:
            event = await store.take_event(conn, job.payload["outbox_id"])
            if event is None:  # taken already (a job queued twice)
                return None
            trigger = (event["trigger_type"], event["data"], f"event:{event['event_id']}")
            return (*trigger, event["depth"])

        await self._trigger(UUID(job.company_id), take)

    async def before_turn(self, job: Job) -> None:
        """Run the `message_received` workflows of the visitor message a turn answers."""
        company_id = UUID(job.company_id)
        # Most companies have none: one read says so, where the transaction
        # of `_trigger` takes four round trips to find out (it asks again, in
        # the transaction, when there are some).
        async with self.services.db.read(company_id) as conn:
            if not await store.enabled_for(conn, company_id, "message_received"):
                return
        message_id = UUID(job.payload["message_id"])

        async def load(conn: asyncpg.Connection) -> Trigger | None:
            message = await messages.get(conn, message_id)
            if message is None:
                return None
            data = {"message": message, "conversation_id": job.payload["conversation_id"]}
            return "message_received", data, f"message:{message_id}", 0

        await self._trigger(company_id, load)

    async def _trigger(
        self,
        company_id: UUID,
        load: Callable[[asyncpg.Connection], Awaitable[Trigger | None]],
    ) -> None:
        """Start (or find again) an execution of every workflow whose trigger
        accepts what `load` finds, in one transaction; then run them."""
        runner = uuid.uuid4().hex
        started = []
        async with self.services.db.tenant(company_id) as conn:
            found = await load(conn)
            if found is None:
                return
            trigger_type, data, dedupe_key, depth = found
            workflows = await store.enabled_for(conn, company_id, trigger_type)
            if not workflows:
                return
            context = await load_context(conn, trigger_type, data)
            for workflow in workflows:
                if accepts(workflow, context):
                    execution = await self._start(
                        conn, company_id, workflow, context, runner, depth, dedupe_key
                    )
                    if execution is not None:
                        started.append((workflow, execution))
        for position, (workflow, execution) in enumerate(started):
            if position:
                # Taken again with a fresh lease: the runs before it may have been long.
                async with self.services.db.tenant(company_id) as conn:
                    execution = await store.claim(
                        conn, execution["id"], runner, runner, self.settings.lease_seconds
                    )
            if execution is not None:
                await self._execute(company_id, workflow, execution, runner)

    async def _start(
        self,
        conn: asyncpg.Connection,
        company_id: UUID,
        workflow: dict,
        context: dict,
        runner: str,
        depth: int,
        dedupe_key: str,
    ) -> dict | None:
        """The execution to run, leased to `runner`; None when there is none
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
            token=runner,
            lease_seconds=self.settings.lease_seconds,
            state=fresh_state(context),
            status="failed" if too_deep else "running",
            error=(
                f"refused at the depth limit: workflows started one another {depth} times "
                f"in a row (at most {MAX_DEPTH}); does a node fire this workflow's own trigger?"
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
        return await store.claim(conn, execution["id"], runner, runner, self.settings.lease_seconds)

    async def on_run(self, job: Job) -> None:
        company_id = UUID(job.company_id)
        runner = uuid.uuid4().hex
        async with self.services.db.tenant(company_id) as conn:
            execution = await store.claim(
                conn,
                UUID(job.payload["execution_id"]),
                job.payload["token"],
                runner,
                self.settings.lease_seconds,
            )
        if execution is None:
            return
        try:
            async with self.services.db.tenant(company_id) as conn:
                workflow = await store.get(conn, execution["workflow_id"])
                if not execution["state"].get("context"):  # started by a webhook or a schedule
                    execution["state"] = fresh_state(
                        await load_context(
                            conn, execution["triggered_by"], execution["trigger_data"]
                        )
                    )
        except Exception as exc:
            await self._crashed(company_id, execution["id"], runner, exc)
            return
        await self._execute(company_id, workflow, execution, runner)

    # --- running --------------------------------------------------------------

    async def _execute(
        self, company_id: UUID, workflow: dict, execution: dict, runner: str
    ) -> None:
        cause = CAUSE.set(Cause(str(execution["id"]), str(workflow["id"]), execution["depth"]))
        try:
            run = _Run(self, company_id, workflow, execution, runner, simulate=False)
            if workflow["enabled"]:
                await run.walk()
            else:
                await run.finish("cancelled", error="the workflow was disabled")
        except _Lost:
            log.info('{"event":"workflow_execution_lost","id":"%s"}', execution["id"])
        except Exception as exc:
            await self._crashed(company_id, execution["id"], runner, exc)
        finally:
            CAUSE.reset(cause)

    async def _crashed(
        self, company_id: UUID, execution_id: UUID, runner: str, error: Exception
    ) -> None:
        """A run failed outside any node (a node's own failure is in its trace).
        Not raised to the queue: retrying the job would bypass the count of
        takeovers, which is what bounds the tries (MAX_TAKEOVERS)."""
        log.exception(
            '{"event":"workflow_execution_crashed","id":"%s"}', execution_id, exc_info=error
        )
        reason = f"{type(error).__name__}: {error}"[:500]
        try:
            async with self.services.db.tenant(company_id) as conn:
                await store.note_crash(conn, execution_id, runner, reason)
        except Exception:  # the lease expires by itself, and the takeover is counted all the same
            log.exception('{"event":"workflow_crash_unrecorded","id":"%s"}', execution_id)

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
        run = _Run(self, company_id, workflow, execution, runner="", simulate=True)
        matched = accepts(workflow, context)
        if matched:
            await run.walk()
        else:
            await run.finish("success")  # the trigger would not fire: nothing more to do
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
        return {**stored, "trigger_matched": matched, "variables": run.state["vars"]}

    # --- timers ---------------------------------------------------------------

    async def tick(self) -> int:
        """Queue what is due; returns how many jobs were queued. Each kind of
        timer has its own transaction and loop name: one that fails (logged
        and counted by `hub.loops`) does not hold up the others."""
        token = uuid.uuid4().hex
        jobs: list[Job] = []
        loops = self.services.loops
        for name, part in (
            ("workflow_delays", self._wake_due),
            ("workflow_stalled", self._take_stalled),
            ("workflow_outbox", self._retry_events),
            ("workflow_schedules", self._start_schedules),
        ):
            await loops.attempt(name, lambda part=part: part(token, jobs))
        for job in jobs:
            await enqueue_committed(
                self.services.jobs, job, self.services.metrics.job_enqueue_failures
            )
        return len(jobs)

    async def _wake_due(self, token: str, jobs: list[Job]) -> None:
        async with self.services.db.system() as conn:
            due = await store.wake_due(conn, token, self.settings.lease_seconds)
        jobs.extend(run_job(row["company_id"], row["id"], token) for row in due)

    async def _take_stalled(self, token: str, jobs: list[Job]) -> None:
        async with self.services.db.system() as conn:
            failed = await store.fail_stalled(conn, MAX_TAKEOVERS)
            stalled = await store.take_stalled(conn, token, self.settings.lease_seconds)
        for row in failed:
            log.warning('{"event":"workflow_execution_given_up","id":"%s"}', row["id"])
        jobs.extend(run_job(row["company_id"], row["id"], token) for row in stalled)

    async def _retry_events(self, token: str, jobs: list[Job]) -> None:
        async with self.services.db.system() as conn:
            events = await store.events_to_retry(conn, self.settings.outbox_retry_seconds)
        for row in events:
            if row["attempts"] < MAX_EVENT_ATTEMPTS:
                jobs.append(event_job(row["company_id"], row["subject"], row["id"]))
            else:
                await self._fail_event(
                    row["company_id"],
                    row["id"],
                    f"its trigger event was queued again {row['attempts']} times and never"
                    " handled (whatever took it stopped before starting the workflow)",
                )

    async def _start_schedules(self, token: str, jobs: list[Job]) -> None:
        started: list[Job] = []
        async with self.services.db.system() as conn:
            for workflow in await store.due_schedules(conn):
                scheduled_for = workflow["next_run_at"].isoformat()
                # This due run's execution, once per due time whatever becomes of it.
                execution_of = functools.partial(
                    store.create_execution,
                    conn,
                    company_id=workflow["company_id"],
                    workflow=workflow,
                    triggered_by="schedule",
                    trigger_data={"scheduled_for": scheduled_for},
                    dedupe_key=f"schedule:{scheduled_for}",
                    depth=0,
                )
                try:
                    schedule = Schedule.model_validate(workflow["trigger_config"])
                except ValueError as exc:
                    # Saved before today's validation: it cannot say when it runs
                    # next, so it stops, with a failed execution that says why.
                    await store.set_next_run(conn, workflow["id"], None)
                    await execution_of(
                        token=None,
                        lease_seconds=0,
                        status="failed",
                        error=f"the schedule is not valid, so it stopped: {exc}"[:500],
                    )
                    continue
                await store.set_next_run(conn, workflow["id"], schedule.next_after(_now()))
                execution, created = await execution_of(
                    token=token,
                    lease_seconds=self.settings.lease_seconds,
                )
                if created:
                    started.append(run_job(workflow["company_id"], execution["id"], token))
        jobs.extend(started)

    async def _event_dead(self, job: Job, error: BaseException) -> None:
        """The queue gave up on an event's job (it failed on every attempt)."""
        cause = f"its trigger event could not be handled: {type(error).__name__}: {error}"
        await self._fail_event(job.company_id, job.payload["outbox_id"], cause[:500])

    async def _fail_event(self, company_id: UUID | str, outbox_id: int, cause: str) -> None:
        """Take a poisonous event out of the outbox, leaving a `failed`
        execution that says why on each workflow it was for."""
        log.warning('{"event":"workflow_event_given_up","outbox_id":%s}', outbox_id)
        async with self.services.db.tenant(UUID(str(company_id))) as conn:
            event = await store.take_event(conn, outbox_id)
            if event is None:  # taken meanwhile
                return
            for workflow in await store.enabled_for(
                conn, event["company_id"], event["trigger_type"]
            ):
                await store.create_execution(
                    conn,
                    company_id=event["company_id"],
                    workflow=workflow,
                    triggered_by=event["trigger_type"],
                    trigger_data=event["data"],
                    dedupe_key=f"event:{event['event_id']}",
                    depth=event["depth"],
                    token=None,
                    lease_seconds=0,
                    status="failed",
                    error=cause,
                )


def _bounded(value: Any) -> Any:
    """A node's input or output as the trace keeps it: at most MAX_TRACE_VALUE."""
    encoded = jsoncodec.dumps(value)
    if len(encoded) <= MAX_TRACE_VALUE:
        return value
    preview = encoded[:2000].decode("utf-8", "ignore")
    return {"truncated": True, "bytes": len(encoded), "preview": preview}


class _Run:
    """One pass over an execution's graph."""

    def __init__(
        self,
        engine: Engine,
        company_id: UUID,
        workflow: dict,
        execution: dict,
        runner: str,
        *,
        simulate: bool,
    ) -> None:
        self.engine = engine
        self.company_id = company_id
        self.workflow = workflow
        self.execution_id = execution["id"]
        self.depth = execution["depth"]
        self.graph = Graph(execution["graph"]["nodes"], execution["graph"]["edges"])
        self.state = execution["state"]
        self.trace: list[dict] = list(execution["trace"])
        self.active_ms = execution["execution_time_ms"]
        self.runner = runner
        self.simulate = simulate
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
        """Every reached node, once, in topological order. A graph holds at most
        MAX_NODES nodes, so that is also the step limit."""
        for node_id in self.graph.order:
            if node_id in self.state["done"] or not self._reached(node_id):
                continue
            outcome = await self._node(self.graph.nodes[node_id])
            if outcome == "stop":
                return
            if outcome == "end":
                break
        await self.finish("success")

    def _step(self, node: dict, data: Any) -> Step:
        return Step(
            services=self.engine.services,
            llm=self.engine.llm,
            webhooks=self.engine.webhooks,
            company_id=self.company_id,
            workflow=self.workflow,
            execution_id=str(self.execution_id),
            depth=self.depth,
            node_id=node["id"],
            data=data,
            state=self.state,
            conn=None,
            simulate=self.simulate,
        )

    async def _node(self, node: dict) -> str:
        """Run one node and record it; returns go, end or stop (failed, or parked
        on a delay)."""
        node_type = node["type"]
        started = time.perf_counter()
        entry: dict[str, Any] = {"node_id": node["id"], "type": node_type, "started_at": _now()}
        data = node_data(node)
        if node_type == "delay":
            entry.update(status="success", output=self._delay(data))
            self._record(entry, started)
            if self.simulate:
                return "go"
            resume_at = datetime.fromisoformat(entry["output"]["resume_at"])
            await self.finish("running", resume_at=resume_at)
            return "stop"

        action = ACTIONS[node_type]
        step = self._step(node, data)
        entry["input"] = _bounded(_inputs(step))
        if not (action.writes or action.replayable):
            await self._save()  # renews the lease and proves it is still ours
        budget = data.timeout_seconds
        try:
            if action.writes and not self.simulate:
                await asyncio.wait_for(self._write(step, action, entry, started), budget)
                return "go"
            output = await asyncio.wait_for(action.run(step), action.budget(data))
            entry.update(status="success", output=_bounded(output))
        except _Lost:
            raise
        except NodeError as exc:
            entry.update(status="failed", error=str(exc))
            if exc.details:
                entry["output"] = _bounded(exc.details)
        except TimeoutError:
            entry.update(status="failed", error=f"timed out after {action.budget(data):g} s")
        except Exception as exc:
            log.exception('{"event":"workflow_node_crashed","node":"%s"}', node["id"])
            entry.update(status="failed", error=f"{type(exc).__name__}: {exc}"[:500])
        self._record(entry, started, output if entry["status"] == "success" else None)
        if entry["status"] == "failed" and data.on_error == "stop":
            await self.finish("failed", error=f"node {node['id']} ({node_type}): {entry['error']}")
            return "stop"
        if not action.replayable:
            await self._save()
        return "end" if node_type == "end" else "go"

    async def _write(self, step: Step, action, entry: dict, started: float) -> None:
        """A node that writes: its change and the record of it commit together,
        or neither does (a failure is then recorded on its own)."""
        before = copy.deepcopy(self.state), len(self.trace), self.active_ms
        try:
            async with self.db.tenant(self.company_id) as conn:
                if not await store.lock_owned(conn, self.execution_id, self.runner):
                    raise _Lost()
                step.conn = conn
                output = await action.run(step)
                entry.update(status="success", output=_bounded(output))
                self._record(entry, started, output)
                await self._save(conn)
        except BaseException:
            self.state, trace_length, self.active_ms = before
            step.state = self.state
            del self.trace[trace_length:]
            raise

    def _delay(self, data: Any) -> dict[str, Any]:
        if self.simulate:
            return {"simulated": True, "would_wait_seconds": data.duration}
        return {"resume_at": (_now() + timedelta(seconds=data.duration)).isoformat()}

    def _record(self, entry: dict, started: float, output: Any = None) -> None:
        """Into the trace; the node's full output into the state, for templates."""
        entry["duration_ms"] = round((time.perf_counter() - started) * 1000, 2)
        self.active_ms += round(entry["duration_ms"])
        self.trace.append(entry)
        node_id = entry["node_id"]
        self.state["done"].append(node_id)
        self.state["outputs"][node_id] = output if entry["status"] == "success" else None
        if entry["type"] == "condition":  # a failed condition (continuing) goes on by "no"
            self.state["branches"][node_id] = (output or {}).get("branch", "no")

    async def _save(self, conn: asyncpg.Connection | None = None) -> None:
        if self.simulate:
            return
        if conn is None:
            async with self.db.tenant(self.company_id) as own:
                return await self._save(own)
        saved = await store.save_progress(
            conn,
            self.execution_id,
            self.runner,
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
                self.runner,
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
