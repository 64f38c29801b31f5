"""From what happened to a workflow run: the records a run can read
(`context`), and whether a workflow's trigger configuration accepts it."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from hub import jsoncodec
from hub.store import contacts, conversations, deals
from hub.workflow_graph import trigger_config

_CONVERSATION_TRIGGERS = ("conversation_started", "conversation_ended")
_CONTACT_TRIGGERS = ("contact_created", "contact_updated")
_DEAL_TRIGGERS = ("deal_created", "deal_stage_changed")


def _json(value: Any) -> Any:
    """Records as templates and the stored state see them: ids and times as text."""
    return jsoncodec.loads(jsoncodec.dumps(value))


def _uuid(value: Any) -> UUID | None:
    try:
        return UUID(str(value)) if value else None
    except ValueError:
        return None


async def load_context(
    conn: asyncpg.Connection, trigger_type: str, data: dict[str, Any]
) -> dict[str, Any]:
    """`trigger`, `message`, `conversation`, `contact` and `deal` for a run.

    A record the trigger is about comes from its data; the others are read by
    the ids it names (`conversation_id`, `contact_id`, `deal_id`), inside the
    tenant's transaction, so a webhook or a test cannot name another company's.
    A test may also give the records themselves (`testData.contact = {...}`).
    """
    context: dict[str, Any] = {"trigger": data}

    conversation = data if trigger_type in _CONVERSATION_TRIGGERS else None
    if conversation is None and (conversation_id := _uuid(data.get("conversation_id"))):
        conversation = await conversations.get(conn, conversation_id)
    if isinstance(data.get("conversation"), dict):
        conversation = {**(conversation or {}), **data["conversation"]}

    message = data.get("message")
    if isinstance(message, str):
        message = {"content": message, "sender_type": "user"}

    deal = data if trigger_type in _DEAL_TRIGGERS else None
    if deal is None and (deal_id := _uuid(data.get("deal_id"))):
        deal = await deals.get(conn, deal_id)
    if isinstance(data.get("deal"), dict):
        deal = {**(deal or {}), **data["deal"]}

    contact = data if trigger_type in _CONTACT_TRIGGERS else None
    if contact is None:
        contact_id = (
            _uuid(data.get("contact_id"))
            or _uuid((conversation or {}).get("contact_id"))
            or _uuid((deal or {}).get("contact_id"))
        )
        if contact_id:
            contact = await contacts.get(conn, contact_id)
    if isinstance(data.get("contact"), dict):
        contact = {**(contact or {}), **data["contact"]}

    context.update(
        message=message if isinstance(message, dict) else None,
        conversation=conversation,
        contact=contact,
        deal=deal,
    )
    return _json(context)


def _words(text: str) -> str:
    return text.casefold()


def _has_word(text: str, keyword: str) -> bool:
    pattern = r"(?<!\w)" + re.escape(_words(keyword.strip())) + r"(?!\w)"
    return re.search(pattern, _words(text)) is not None


def _seconds_between(start: Any, end: Any) -> float | None:
    try:
        return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    except (TypeError, ValueError):
        return None


def accepts(workflow: dict[str, Any], context: dict[str, Any]) -> bool:
    """Whether the workflow's trigger configuration accepts this run."""
    trigger_type = workflow["trigger_type"]
    config = trigger_config(trigger_type, workflow["trigger_config"])
    conversation = context.get("conversation") or {}
    trigger = context.get("trigger") or {}

    agent_id = getattr(config, "agent_id", None)
    if agent_id is not None and str(conversation.get("agent_id")) != str(agent_id):
        return False
    channel = getattr(config, "channel", None)
    if channel is not None and conversation.get("channel") != channel:
        return False

    if trigger_type == "message_received":
        content = (context.get("message") or {}).get("content") or ""
        if config.keywords:
            found = [_has_word(content, k) for k in config.keywords]
            return all(found) if config.match == "all" else any(found)
        return True
    if trigger_type == "conversation_ended":
        duration = _seconds_between(conversation.get("started_at"), conversation.get("ended_at"))
        return config.min_duration_seconds == 0 or (
            duration is not None and duration >= config.min_duration_seconds
        )
    if trigger_type == "contact_updated":
        changed = trigger.get("changed") or []
        return not config.fields or any(f in changed for f in config.fields)
    if trigger_type == "deal_stage_changed":
        return (config.from_ is None or trigger.get("stage_from") == config.from_) and (
            config.to is None or trigger.get("stage_to", trigger.get("stage")) == config.to
        )
    return True
