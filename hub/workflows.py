"""How workflows hook into the hub: which domain events start them, the jobs
that carry them to the engine (agents_runtime.workflows), the engine's
interface for REST, and the signature of webhooks in both directions.

Domain events reach every process (the bus is pub/sub), but a workflow must
run once per event, and an event that was committed must not be lost. So an
event that can start one of the company's workflows is written to an outbox
in the transaction of the change itself (`keep_trigger_events`), its job is
queued after the commit, and whichever worker takes the job starts the
workflows in the transaction that removes it from the outbox.
Visitor messages (`message_received`) do not go through the outbox: their
turn job is already recovered if lost (hub.lifecycle), and their workflows run
at the start of the agent turn's job, so that a workflow can hand off to a
person before the AI answers.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from asyncpg import Connection
from prometheus_client import Counter

from hub.events import Event
from hub.jobs import Job, JobQueue, enqueue_committed
from hub.store import workflows as store

if TYPE_CHECKING:
    from hub.db import Database

WORKFLOW_EVENT = "workflow.event"  # job: match a domain event to workflows and run them
WORKFLOW_RUN = "workflow.run"  # job: run (or resume) one execution

# Domain event → the trigger it can fire.
TRIGGERS = {
    "conversation.started": "conversation_started",
    "conversation.ended": "conversation_ended",
    "contact.created": "contact_created",
    "contact.updated": "contact_updated",
    "deal.created": "deal_created",
    "deal.updated": "deal_stage_changed",
}

MAX_DEPTH = 5  # workflows started by workflows started by ...: at most this deep


@dataclass(frozen=True)
class Cause:
    """The execution whose node is running; what it changes is caused by it."""

    execution_id: str
    workflow_id: str
    depth: int


# Set by the engine while a node runs, read by the outbox hook in the same task: an
# event published by a node carries the depth of the execution behind it.
CAUSE: ContextVar[Cause | None] = ContextVar("workflow_cause", default=None)


def _subject(event: Event) -> str:
    """The job key: a conversation's workflow jobs run in order with its turns."""
    data = event.data
    if event.type.startswith("conversation."):
        return str(data["id"])
    return str(data.get("conversation_id") or data["id"])


def event_job(company_id: UUID | str, subject: str, outbox_id: int) -> Job:
    return Job(
        kind=WORKFLOW_EVENT,
        company_id=str(company_id),
        key=subject,
        payload={"outbox_id": outbox_id},
    )


def keep_trigger_events(
    jobs: JobQueue, enqueue_failures: Counter
) -> Callable[[Database, Connection, Event], None]:
    """The database's event hook: an event that can start one of the company's
    workflows goes into the outbox in the change's own transaction, and its job
    is queued once that commits. The engine takes it from the outbox."""

    def hook(db: Database, conn: Connection, event: Event) -> None:
        trigger = TRIGGERS.get(event.type)
        if trigger is None:
            return
        data = event.data
        if event.type == "deal.updated" and data.get("stage_from") == data.get("stage_to"):
            return
        cause = CAUSE.get()  # set while a workflow's node runs in this task
        subject = _subject(event)

        async def record() -> None:
            outbox_id = await store.keep_event(
                conn,
                company_id=event.company_id,
                trigger_type=trigger,
                event_id=event.id,
                subject=subject,
                data=data,
                depth=0 if cause is None else cause.depth + 1,
            )
            if outbox_id is not None:
                job = event_job(event.company_id, subject, outbox_id)
                # Lost, the engine's timer queues it again from the outbox.
                db.after_commit(conn, lambda: enqueue_committed(jobs, job, enqueue_failures))

        db.before_commit(conn, record)

    return hook


def run_job(company_id: UUID | str, execution_id: UUID | str, token: str) -> Job:
    return Job(
        kind=WORKFLOW_RUN,
        company_id=str(company_id),
        key=f"execution:{execution_id}",
        payload={"execution_id": str(execution_id), "token": token},
    )


def signature(secret: str, body: bytes) -> str:
    """`X-Syntera-Signature` of a webhook body, inbound and outbound alike."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def valid_signature(secret: str, body: bytes, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(signature(secret, body), given.strip())


class WorkflowService(Protocol):
    """What REST needs from the engine (agents_runtime puts it in Services)."""

    async def test(
        self, company_id: UUID, workflow: dict[str, Any], test_data: dict[str, Any]
    ) -> dict[str, Any]:
        """A dry run against `test_data`: conditions evaluated, actions simulated,
        nothing written but the execution row marked `test`; returns it."""
