"""Function-calling tools an agent may be given. Each runs in a tenant
transaction of the conversation's company: a tool can reach nothing else."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

from asyncpg import Connection

from hub import crm
from hub.conversations import append_message, hand_off, update_conversation
from hub.db.database import savepoint
from hub.services import Services
from hub.store import conversations, messages


@dataclass
class ToolContext:
    services: Services
    company_id: UUID
    conversation_id: UUID
    agent_id: UUID


@dataclass
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    # Runs inside the caller's tenant transaction (`conn`), so that its effect
    # and the record of its result commit together (see `call`).
    run: Callable[[ToolContext, Connection, dict[str, Any]], Awaitable[dict[str, Any]]]
    # After this tool the AI says its last words and stops replying.
    ends_ai: bool = False

    def spec(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


class ToolError(Exception):
    """Bad arguments or a refused action; the message goes back to the model."""


def _text(arguments: dict[str, Any], name: str, limit: int = 500) -> str | None:
    value = arguments.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ToolError(f"{name} must be a string")
    return value.strip()[:limit] or None


async def _handoff(ctx: ToolContext, conn: Connection, arguments: dict[str, Any]) -> dict[str, Any]:
    reason = _text(arguments, "reason") or "The customer asked for a person."
    conversation = await hand_off(
        ctx.services.db,
        conn,
        company_id=ctx.company_id,
        conversation_id=ctx.conversation_id,
        reason=reason,
        by="agent",
    )
    if conversation is None:
        raise ToolError("the conversation no longer exists")
    return {"handed_off": True, "reason": reason}


async def _end(ctx: ToolContext, conn: Connection, arguments: dict[str, Any]) -> dict[str, Any]:
    conversation = await update_conversation(
        ctx.services.db,
        conn,
        company_id=ctx.company_id,
        conversation_id=ctx.conversation_id,
        fields={"status": "ended"},
        by="agent",
    )
    if conversation is None:
        raise ToolError("the conversation no longer exists")
    return {"ended": True}


async def _capture_contact(
    ctx: ToolContext, conn: Connection, arguments: dict[str, Any]
) -> dict[str, Any]:
    details = {
        name: _text(arguments, name, 254 if name == "email" else 200) for name in crm.CAPTURED
    }
    try:
        contact, created = await crm.capture_contact(
            ctx.services.db, conn, ctx.company_id, details, ctx.conversation_id
        )
    except ValueError as exc:
        raise ToolError(str(exc)) from None
    return {"contact_id": str(contact["id"]), "created": created}


async def _create_deal(
    ctx: ToolContext, conn: Connection, arguments: dict[str, Any]
) -> dict[str, Any]:
    title = _text(arguments, "title", 200)
    if not title:
        raise ToolError("a deal needs a title")
    value = arguments.get("value", 0)
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value < 1e12:
        raise ToolError("value must be a non-negative number")
    conversation = await conversations.get(conn, ctx.conversation_id)
    if conversation is None:
        raise ToolError("the conversation no longer exists")
    deal = await crm.create_deal(
        ctx.services.db,
        conn,
        ctx.company_id,
        {
            "title": title,
            "value": Decimal(str(round(value, 2))),
            "stage": "lead",
            "contact_id": conversation["contact_id"],
            "metadata": {"conversation_id": str(ctx.conversation_id), "source": "agent"},
        },
    )
    return {"deal_id": str(deal["id"]), "contact_id": str(deal["contact_id"] or "") or None}


TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in [
        Tool(
            "capture_contact",
            "Save the customer's contact details to the CRM when they give them (at least an "
            "email or a phone number), so the team can follow up.",
            {
                "type": "object",
                "properties": {
                    "email": {"type": "string"},
                    "phone": {"type": "string"},
                    "first_name": {"type": "string"},
                    "last_name": {"type": "string"},
                    "company_name": {"type": "string"},
                },
            },
            _capture_contact,
        ),
        Tool(
            "create_deal",
            "Record a sales opportunity when the customer shows clear interest in buying.",
            {
                "type": "object",
                "properties": {
                    "title": {"type": "string", "description": "What they want, briefly"},
                    "value": {"type": "number", "description": "Estimated value, if known"},
                },
                "required": ["title"],
            },
            _create_deal,
        ),
        Tool(
            "handoff_to_human",
            "Hand the conversation to a person from the team when the customer asks for one, "
            "is upset, or needs something you cannot do. You stop replying afterwards.",
            {
                "type": "object",
                "properties": {"reason": {"type": "string", "description": "Why, in a sentence"}},
                "required": ["reason"],
            },
            _handoff,
            ends_ai=True,
        ),
        Tool(
            "end_conversation",
            "End the conversation when the customer says goodbye or has nothing more to ask.",
            {"type": "object", "properties": {"reason": {"type": "string"}}},
            _end,
            ends_ai=True,
        ),
    ]
}


def specs(enabled: list[str]) -> list[dict[str, Any]]:
    return [TOOLS[name].spec() for name in enabled if name in TOOLS]


async def call(
    ctx: ToolContext, conn: Connection, name: str, raw_arguments: str, enabled: list[str]
) -> dict:
    """Run one tool call in the transaction `conn`; failures become a result
    the model can read, and a refused call leaves no trace of what it began."""
    tool = TOOLS.get(name)
    if tool is None or name not in enabled:
        return {"error": f"no tool named {name!r} is available"}
    try:
        arguments = json.loads(raw_arguments or "{}")
        if not isinstance(arguments, dict):
            raise ToolError("arguments must be a JSON object")
        async with savepoint(conn):  # a savepoint: rolled back on ToolError
            return await tool.run(ctx, conn, arguments)
    except json.JSONDecodeError:
        return {"error": "arguments are not valid JSON"}
    except ToolError as exc:
        return {"error": str(exc)}


async def run_and_record(
    ctx: ToolContext,
    name: str,
    raw_arguments: str,
    enabled: list[str],
    *,
    for_message: UUID | None,
    slot: str,
) -> dict[str, Any]:
    """Run a tool call and put it in the transcript (a system message: staff
    see it, visitors do not), both in one transaction. Once per (user message,
    slot, tool), however often a turn is retried or redelivered: a later
    attempt finds the entry and reuses its result. Chat and voice alike."""
    db = ctx.services.db
    client_id = f"tool:{for_message}:{slot}:{name}" if for_message is not None else None
    async with db.tenant(ctx.company_id) as conn:
        if client_id is not None:
            done = await messages.find_by_client_id(conn, ctx.conversation_id, client_id)
            if done is not None:
                return done["metadata"]["result"]
        result = await call(ctx, conn, name, raw_arguments, enabled)
        summary = "failed: " + result["error"] if "error" in result else "done"
        await append_message(
            db,
            conn,
            company_id=ctx.company_id,
            conversation_id=ctx.conversation_id,
            sender_type="system",
            content=f"The assistant used {name} ({summary}).",
            metadata={
                "tool": name,
                "arguments": raw_arguments,
                "result": result,
                "for_message": None if for_message is None else str(for_message),
            },
            client_id=client_id,
        )
    return result
