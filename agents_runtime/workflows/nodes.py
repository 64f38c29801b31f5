"""What each node type does. A node reads its parameters (templates filled in
from the run) and acts through the hub's own paths — messages through
hub.conversations, CRM records through hub.crm, notifications through
hub.notifications — so a workflow's change looks like any other.

Nodes that write to the database (`writes=True`) get the transaction in which
the engine also records that they ran: a node's change and its record commit
together, so a redelivered run never does it twice. In a dry run (`simulate`)
they say what they would do and write nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

import asyncpg

from agents_runtime.llm import LLM, ChatRequest, Completion, OfflineResponder, complete
from agents_runtime.workflows.conditions import evaluate
from agents_runtime.workflows.webhook import WebhookError, WebhookSender
from hub import crm, jsoncodec
from hub.conversations import append_message, hand_off, update_conversation
from hub.errors import ApiError
from hub.notifications import notify
from hub.services import Services
from hub.store import agents, contacts, conversations
from hub.templates import render_text, render_value
from hub.workflow_graph import NodeData

DEFAULT_MODEL = "gpt-4o-mini"


class NodeError(Exception):
    """A node could not do its job; the message goes into the trace."""

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.details = details or {}


@dataclass
class Step:
    """One node's run: its parameters and what it can reach."""

    services: Services
    llm: LLM | None
    webhooks: WebhookSender
    company_id: UUID
    workflow: dict[str, Any]
    execution_id: str
    depth: int  # how many executions led to this one (sent along by webhooks)
    node_id: str
    data: NodeData
    state: dict[str, Any]  # context, vars, outputs: changed in place
    conn: asyncpg.Connection | None  # for nodes that write
    simulate: bool

    @property
    def scope(self) -> dict[str, Any]:
        """What templates can read."""
        outputs = self.state["outputs"]
        return {
            **self.state["context"],
            "vars": self.state["vars"],
            "nodes": {node: {"output": output} for node, output in outputs.items()},
        }

    def render(self, value: Any) -> Any:
        return render_value(value, self.scope)

    def text(self, value: str | None) -> str:
        return "" if value is None else render_text(value, self.scope).strip()

    def record(self, name: str) -> dict[str, Any]:
        """The run's conversation, contact or deal; a node that needs one fails without."""
        value = self.state["context"].get(name)
        if not value or not value.get("id"):
            raise NodeError(f"this run has no {name}")
        return value

    def remember(self, name: str, value: dict[str, Any]) -> None:
        """A record the node changed: later nodes see it as it is now."""
        self.state["context"][name] = jsoncodec.loads(jsoncodec.dumps(value))

    @property
    def db(self):
        return self.services.db

    @property
    def origin(self) -> dict[str, str]:
        return {"workflow_id": str(self.workflow["id"]), "execution_id": self.execution_id}


def _uuid(value: str, what: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise NodeError(f"{value!r} is not a {what} id") from None


def _number(value: Any, what: str) -> Decimal:
    try:
        number = Decimal(str(value).strip() or "0")
    except InvalidOperation:
        raise NodeError(f"{what} {value!r} is not a number") from None
    if not number.is_finite() or not 0 <= number < Decimal("1e12"):
        raise NodeError(f"{what} must be a number from 0 up")
    return round(number, 2)


# --- nodes that read -------------------------------------------------------


async def trigger(step: Step) -> dict[str, Any]:
    return {"trigger": step.state["context"].get("trigger")}


async def condition(step: Step) -> dict[str, Any]:
    result = evaluate(step.data.condition(), step.scope)
    return {"result": result, "branch": "yes" if result else "no"}


async def set_variable(step: Step) -> dict[str, Any]:
    value = step.render(step.data.value)
    step.state["vars"][step.data.name] = value
    return {"name": step.data.name, "value": value}


async def end(step: Step) -> dict[str, Any]:
    return {"ended": True}


# --- nodes that write -------------------------------------------------------


async def send_message(step: Step) -> dict[str, Any]:
    content = step.text(step.data.content)[:10_000]
    if not content:
        raise NodeError("the message is empty once its template is filled in")
    conversation_id = _uuid(step.record("conversation")["id"], "conversation")
    if step.simulate:
        return {"simulated": True, "sender": step.data.sender, "content": content}
    conversation = await conversations.get(step.conn, conversation_id)
    if conversation is None or conversation["status"] != "active":
        raise NodeError("the conversation is not active")
    message, _ = await append_message(
        step.db,
        step.conn,
        company_id=step.company_id,
        conversation_id=conversation_id,
        sender_type=step.data.sender,
        sender_id=conversation["agent_id"] if step.data.sender == "agent" else None,
        content=content,
        metadata=step.origin,
        # Stored once per execution and node, however often the run is delivered.
        client_id=f"workflow:{step.execution_id}:{step.node_id}",
    )
    return {"message_id": message["id"], "seq": message["seq"], "content": content}


async def create_contact(step: Step) -> dict[str, Any]:
    details = {name: step.text(getattr(step.data, name)) or None for name in crm.CAPTURED}
    tags = [t for t in (step.text(tag)[:50] for tag in step.data.tags) if t]
    conversation = step.state["context"].get("conversation") or {}
    conversation_id = UUID(conversation["id"]) if conversation.get("id") else None
    try:
        crm.check_contact(details)
        if not (details["email"] or details["phone"]):
            raise ValueError("an email or a phone number is needed (after filling in templates)")
        if step.simulate:
            return {"simulated": True, "contact": details, "tags": tags}
        contact, created = await crm.capture_contact(
            step.db, step.conn, step.company_id, details, conversation_id
        )
    except ValueError as exc:
        raise NodeError(str(exc)) from None
    if tags:
        merged = list(dict.fromkeys([*contact["tags"], *tags]))
        contact = await crm.update_contact(
            step.db, step.conn, step.company_id, contact["id"], {"tags": merged}
        )
    step.remember("contact", contact)
    return {"contact_id": contact["id"], "created": created}


async def update_contact(step: Step) -> dict[str, Any]:
    if step.data.contact_id:
        contact_id = _uuid(step.text(step.data.contact_id), "contact")
    else:
        contact_id = _uuid(step.record("contact")["id"], "contact")
    changes = {name: step.text(value)[:200] or None for name, value in step.data.fields.items()}
    try:
        crm.check_contact(changes)
    except ValueError as exc:
        raise NodeError(str(exc)) from None
    if step.simulate:
        return {"simulated": True, "contact_id": contact_id, "changes": changes}
    try:
        contact = await crm.update_contact(step.db, step.conn, step.company_id, contact_id, changes)
    except ApiError as exc:
        raise NodeError(exc.message) from None
    if contact is None:
        raise NodeError("the contact does not exist")
    step.remember("contact", contact)
    return {"contact_id": contact_id, "changes": changes}


async def _tag(step: Step, add: bool) -> dict[str, Any]:
    tag = step.text(step.data.tag)[:50]
    if not tag:
        raise NodeError("the tag is empty once its template is filled in")
    target = step.data.target
    record_id = _uuid(step.record(target)["id"], target)
    if step.simulate:
        return {"simulated": True, "target": target, "id": record_id, "tag": tag, "add": add}
    current = await (conversations if target == "conversation" else contacts).get(
        step.conn, record_id
    )
    if current is None:
        raise NodeError(f"the {target} does not exist")
    tags = list(current["tags"])
    tags = list(dict.fromkeys([*tags, tag])) if add else [t for t in tags if t != tag]
    if tags != list(current["tags"]):
        if target == "conversation":
            current = await update_conversation(
                step.db,
                step.conn,
                company_id=step.company_id,
                conversation_id=record_id,
                fields={"tags": tags},
                by="workflow",
            )
        else:
            current = await crm.update_contact(
                step.db, step.conn, step.company_id, record_id, {"tags": tags}
            )
        step.remember(target, current)
    return {"target": target, "id": record_id, "tags": tags}


async def add_tag(step: Step) -> dict[str, Any]:
    return await _tag(step, add=True)


async def remove_tag(step: Step) -> dict[str, Any]:
    return await _tag(step, add=False)


async def create_deal(step: Step) -> dict[str, Any]:
    title = step.text(step.data.title)[:200]
    if not title:
        raise NodeError("the deal's title is empty once its template is filled in")
    contact = step.state["context"].get("contact") or {}
    fields = {
        "title": title,
        "value": _number(step.render(step.data.value), "value"),
        "stage": step.data.stage,
        "probability": step.data.probability,
        "contact_id": UUID(contact["id"]) if contact.get("id") else None,
        "metadata": step.origin,
    }
    if step.simulate:
        return {"simulated": True, "deal": fields}
    deal = await crm.create_deal(step.db, step.conn, step.company_id, fields)
    step.remember("deal", deal)
    return {"deal_id": deal["id"], "stage": deal["stage"], "value": deal["value"]}


async def update_deal(step: Step) -> dict[str, Any]:
    if step.data.deal_id:
        deal_id = _uuid(step.text(step.data.deal_id), "deal")
    else:
        deal_id = _uuid(step.record("deal")["id"], "deal")
    changes: dict[str, Any] = {}
    if step.data.title is not None:
        changes["title"] = step.text(step.data.title)[:200] or None
        if not changes["title"]:
            raise NodeError("the deal's title is empty once its template is filled in")
    if step.data.value is not None:
        changes["value"] = _number(step.render(step.data.value), "value")
    if step.data.stage is not None:
        changes["stage"] = step.data.stage
    if step.data.probability is not None:
        changes["probability"] = step.data.probability
    if step.simulate:
        return {"simulated": True, "deal_id": deal_id, "changes": changes}
    deal = await crm.update_deal(step.db, step.conn, step.company_id, deal_id, changes)
    if deal is None:
        raise NodeError("the deal does not exist")
    step.remember("deal", deal)
    return {"deal_id": deal_id, "stage": deal["stage"], "changes": changes}


async def notify_staff(step: Step) -> dict[str, Any]:
    title = step.text(step.data.title)[:200] or "Workflow"
    body = step.text(step.data.body)[:2000] or None
    user_id, role = step.data.user_id, step.data.role
    to = {"user_id": user_id} if user_id else {"role": role or "owners and admins"}
    if step.simulate:
        return {"simulated": True, "title": title, "body": body, "to": to}
    if user_id and not await step.conn.fetchval("SELECT true FROM users WHERE id = $1", user_id):
        raise NodeError("no such user in this company")
    conversation = step.state["context"].get("conversation") or {}
    created = await notify(
        step.db,
        step.conn,
        company_id=step.company_id,
        type="workflow",
        title=title,
        body=body,
        data={**step.origin, "conversation_id": conversation.get("id")},
        user_ids=[user_id] if user_id else None,
        roles=[role] if role else None,
    )
    return {"notified": len(created), "to": to}


async def handoff(step: Step) -> dict[str, Any]:
    reason = step.text(step.data.reason) or "A workflow asked for a person."
    conversation_id = _uuid(step.record("conversation")["id"], "conversation")
    if step.simulate:
        return {"simulated": True, "reason": reason}
    conversation = await hand_off(
        step.db,
        step.conn,
        company_id=step.company_id,
        conversation_id=conversation_id,
        reason=reason,
        by="workflow",
    )
    if conversation is None:
        raise NodeError("the conversation does not exist")
    return {"handed_off": True, "reason": reason}


# --- nodes that reach outside -----------------------------------------------


async def webhook(step: Step) -> dict[str, Any]:
    data = step.data
    context = step.state["context"]
    body = (
        step.render(data.body)
        if data.body is not None
        else {
            **step.origin,
            **{
                k: context.get(k) for k in ("trigger", "message", "conversation", "contact", "deal")
            },
            "vars": step.state["vars"],
        }
    )
    request = {
        "method": data.method,
        "url": step.text(data.url),
        "headers": {name: step.text(value) for name, value in data.headers.items()},
    }
    try:
        step.webhooks.check_url(request["url"])
        if step.simulate:
            return {"simulated": True, "request": {**request, "body": body}}
        return await step.webhooks.send(
            **request,
            body=body,
            secret=step.workflow["secret"],
            delivery=f"{step.execution_id}:{step.node_id}",
            depth=step.depth,
            attempt_timeout=data.timeout_seconds,
            retries=data.retries,
        )
    except WebhookError as exc:
        raise NodeError(str(exc), {"attempts": exc.attempts}) from None


_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$")


async def _ask(step: Step, model: str, system: str, text: str) -> Completion:
    if step.llm is None or isinstance(step.llm, OfflineResponder):
        raise NodeError("the llm node needs a model endpoint (set OPENAI_API_KEY)")
    request = ChatRequest(
        model=model,
        messages=[{"role": "system", "content": system}, {"role": "user", "content": text}],
        temperature=0,
        max_tokens=300,
    )
    completion = await complete(step.llm, request)
    if completion is None:
        raise NodeError("the model gave no answer")
    return completion


async def llm(step: Step) -> dict[str, Any]:
    data = step.data
    text = step.text(data.input)[:10_000]
    if not text:
        raise NodeError("the input is empty once its template is filled in")
    model = data.model
    conversation = step.state["context"].get("conversation") or {}
    if model is None and conversation.get("agent_id"):
        async with step.db.tenant(step.company_id) as conn:
            agent = await agents.get(conn, UUID(conversation["agent_id"]))
        model = agent["model"] if agent else None
    model = model or DEFAULT_MODEL
    guidance = f"\n{data.instructions}" if data.instructions else ""
    if data.mode == "classify":
        system = (
            "Classify the user's text. Answer with exactly one of these categories and "
            f"nothing else: {', '.join(data.categories)}.{guidance}"
        )
    else:
        wanted = "\n".join(f"- {name}: {what}" for name, what in data.fields.items())
        system = (
            "Extract these fields from the user's text. Answer with one JSON object with "
            f"exactly these keys, null where the text does not say:\n{wanted}{guidance}"
        )
    if step.simulate:
        return {"simulated": True, "model": model, "mode": data.mode, "input": text}
    completion = await _ask(step, model, system, text)
    usage = {
        "model": completion.model or model,
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
    }
    answer = completion.text.strip()
    if data.mode == "classify":
        chosen = next(
            (c for c in data.categories if c.casefold() == answer.strip(" .\"'").casefold()),
            None,
        ) or next((c for c in data.categories if c.casefold() in answer.casefold()), None)
        if chosen is None:
            raise NodeError(f"the model answered {answer[:100]!r}, which is no category")
        step.state["vars"][data.variable] = chosen
        return {"category": chosen, **usage}
    try:
        values = json.loads(_FENCE.sub("", answer))
    except json.JSONDecodeError:
        raise NodeError(f"the model's answer is not JSON: {answer[:100]!r}") from None
    if not isinstance(values, dict):
        raise NodeError("the model's answer is not a JSON object")
    extracted = {name: values.get(name) for name in data.fields}
    step.state["vars"].update(extracted)
    return {"values": extracted, **usage}


def _webhook_budget(data: NodeData) -> float:
    # Each attempt has the timeout; the backoff between them is 1 s, 2 s, 4 s...
    return (data.retries + 1) * data.timeout_seconds + 2**data.retries


@dataclass(frozen=True)
class Action:
    run: Callable[[Step], Awaitable[dict[str, Any]]]
    writes: bool = False  # runs in the transaction that records it
    # Touches nothing outside the run: running it again after a crash is
    # harmless, so it is saved with the next node rather than on its own.
    replayable: bool = False
    # How long one run of the node may take, all told.
    budget: Callable[[NodeData], float] = lambda data: data.timeout_seconds


ACTIONS: dict[str, Action] = {
    "trigger": Action(trigger, replayable=True),
    "condition": Action(condition, replayable=True),
    "set_variable": Action(set_variable, replayable=True),
    "end": Action(end, replayable=True),
    "send_message": Action(send_message, writes=True),
    "create_contact": Action(create_contact, writes=True),
    "update_contact": Action(update_contact, writes=True),
    "add_tag": Action(add_tag, writes=True),
    "remove_tag": Action(remove_tag, writes=True),
    "create_deal": Action(create_deal, writes=True),
    "update_deal": Action(update_deal, writes=True),
    "notify": Action(notify_staff, writes=True),
    "handoff": Action(handoff, writes=True),
    "webhook": Action(webhook, budget=_webhook_budget),
    "llm": Action(llm),
}
