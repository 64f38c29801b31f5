"""Writing into conversations: the one path by which a message is stored, so
every stored message — from a visitor, the AI, staff or the system — gets its
seq and reaches subscribers as `message.created` once committed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

import asyncpg

from hub.db import Database
from hub.events import Event
from hub.jobs import Job
from hub.store import conversations, messages

if TYPE_CHECKING:
    from hub.services import Services


async def append_message(
    db: Database,
    conn: asyncpg.Connection,
    *,
    company_id: UUID,
    conversation_id: UUID,
    sender_type: str,
    content: str,
    **fields: Any,
) -> tuple[dict[str, Any] | None, bool]:
    """See `hub.store.messages.append`; publishes the stored message once the
    caller's transaction commits (a retried client_id publishes nothing)."""
    message, created = await messages.append(
        conn,
        company_id=company_id,
        conversation_id=conversation_id,
        sender_type=sender_type,
        content=content,
        **fields,
    )
    if created:
        db.publish_after_commit(conn, Event("message.created", company_id, message))
    return message, created


async def update_conversation(
    db: Database,
    conn: asyncpg.Connection,
    *,
    company_id: UUID,
    conversation_id: UUID,
    fields: dict[str, Any],
    by: str,
) -> dict[str, Any] | None:
    """Change status, tags or metadata. Leaving `active` publishes
    `conversation.ended` once (`by`: staff, agent, visitor, idle)."""
    conversation, previous = await conversations.update(conn, conversation_id, fields)
    if conversation is None:
        return None
    db.publish_after_commit(conn, Event("conversation.updated", company_id, conversation))
    if previous == "active" and conversation["status"] != "active":
        db.publish_after_commit(
            conn, Event("conversation.ended", company_id, {**conversation, "by": by})
        )
    return conversation


TURN = "turn"  # the job kind of an agent turn; agents_runtime handles it


def turn_job(company_id: UUID, conversation_id: UUID, message: dict[str, Any]) -> Job:
    return Job(
        kind=TURN,
        company_id=str(company_id),
        key=str(conversation_id),  # one turn at a time per conversation
        payload={
            "conversation_id": str(conversation_id),
            "message_id": str(message["id"]),
            "seq": message["seq"],
        },
    )


async def post_user_message(
    services: Services,
    conn: asyncpg.Connection,
    *,
    company_id: UUID,
    conversation_id: UUID,
    content: str,
    **fields: Any,
) -> tuple[dict[str, Any] | None, bool]:
    """Store a visitor's message and, once committed, queue the agent's turn.

    A retried client_id stores and queues nothing new."""
    message, created = await append_message(
        services.db,
        conn,
        company_id=company_id,
        conversation_id=conversation_id,
        sender_type="user",
        content=content,
        **fields,
    )
    if created:
        job = turn_job(company_id, conversation_id, message)
        services.db.after_commit(conn, lambda: services.jobs.enqueue(job))
    return message, created
