"""How workflows hook into the hub: which domain events start them, the jobs
that carry them to the engine (agents_runtime.workflows), the engine's
interface for REST, and the signature of webhooks in both directions.

Domain events reach every process (the bus is pub/sub), but a workflow must
run once per event. So the process that *publishes* an event hands it to the
job queue (`relay`), and whichever worker takes the job runs the workflows.
Visitor messages (`message_received`) are not relayed: their workflows run
at the start of the agent turn's job, so that a workflow can hand off to a
person before the AI answers.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

from hub import jsoncodec
from hub.events import Event
from hub.jobs import Job, JobQueue

log = logging.getLogger(__name__)

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


# Set by the engine while a node runs, read by `relay` in the same task: an
# event published by a node carries the depth of the execution behind it.
CAUSE: ContextVar[Cause | None] = ContextVar("workflow_cause", default=None)


def _subject(event: Event) -> str:
    """The job key: a conversation's workflow jobs run in order with its turns."""
    data = event.data
    if event.type.startswith("conversation."):
        return str(data["id"])
    return str(data.get("conversation_id") or data["id"])


def relay(jobs: JobQueue) -> Callable[[Event], Awaitable[None]]:
    """The bus hook that queues each trigger event once, from its publisher."""

    async def hand_over(event: Event) -> None:
        trigger = TRIGGERS.get(event.type)
        if trigger is None:
            return
        if event.type == "deal.updated" and event.data.get("stage_from") == event.data.get(
            "stage_to"
        ):
            return
        cause = CAUSE.get()
        job = Job(
            kind=WORKFLOW_EVENT,
            company_id=str(event.company_id),
            key=_subject(event),
            payload={
                "trigger": trigger,
                "event_id": event.id,
                # As subscribers see it: ids and times as strings.
                "data": jsoncodec.loads(jsoncodec.dumps(event.data)),
                "depth": 0 if cause is None else cause.depth + 1,
                "caused_by": None if cause is None else cause.execution_id,
            },
        )
        await jobs.enqueue(job)

    return hand_over


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
