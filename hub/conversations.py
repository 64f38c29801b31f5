"""Writing into conversations: the one path by which a message is stored, so
every stored message — from a visitor, the AI, staff or the system — gets its
seq and reaches subscribers as `message.created` once committed."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from uuid import UUID

import asyncpg

from hub.db import Database
from hub.errors import ApiError, found
from hub.events import Event
from hub.jobs import Job, enqueue_committed
from hub.notifications import notify
from hub.store import conversations, messages

if TYPE_CHECKING:
    from hub.auth import Principal
    from hub.inputs import NewStaffMessage, NewVisitorMessage
    from hub.services import Services
    from hub.visitors import ConversationGrant

log = logging.getLogger(__name__)


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

    Only into an active conversation; a retried client_id stores and queues
    nothing new."""
    conversation = found(await conversations.get(conn, conversation_id), "Conversation")
    if conversation["status"] != "active":
        raise ApiError.conflict("The conversation has ended", status=conversation["status"])
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
        # Lost, it is found again by `hub.lifecycle.recover_turns`.
        services.db.after_commit(
            conn,
            lambda: enqueue_committed(services.jobs, job, services.metrics.job_enqueue_failures),
        )
    return message, created


FAILURE_NOTICE = (
    "Sorry, I couldn't answer just now. A member of our team has been told and will follow up."
)


async def record_failed_turn(
    db: Database,
    *,
    company_id: UUID,
    conversation_id: UUID,
    message_id: UUID,
    cause: str,
) -> bool:
    """A turn given up on: the visitor gets a clear notice, which answers their
    message (so nothing queues its turn again), the reason is kept in the
    notice's `metadata.error` for the dashboard, and staff are told. False
    when the message was answered already."""
    async with db.tenant(company_id) as conn:
        _, created = await append_message(
            db,
            conn,
            company_id=company_id,
            conversation_id=conversation_id,
            sender_type="system",
            content=FAILURE_NOTICE,
            metadata={"error": cause, "failed_turn": True},
            reply_to=message_id,
        )
        if created:
            await notify(
                db,
                conn,
                company_id=company_id,
                type="turn_failed",
                title="The AI could not answer a customer",
                body=cause[:500],
                data={"conversation_id": str(conversation_id)},
            )
    return created


async def start_conversation(
    db: Database,
    conn: asyncpg.Connection,
    *,
    company_id: UUID,
    agent_id: UUID,
    channel: str = "chat",
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Create a conversation; `conversation.started` fires once it is
    committed, and owners and admins are notified."""
    conversation = await conversations.create(
        conn, company_id=company_id, agent_id=agent_id, channel=channel, metadata=metadata
    )
    db.publish_after_commit(conn, Event("conversation.started", company_id, conversation))
    await notify(
        db,
        conn,
        company_id=company_id,
        type="new_conversation",
        title=f"A new {channel} conversation started",
        data={"conversation_id": str(conversation["id"]), "agent_id": str(agent_id)},
    )
    return conversation


async def send_visitor_message(
    services: Services, grant: ConversationGrant, body: NewVisitorMessage
) -> dict[str, Any] | None:
    """A visitor's validated message into the conversation their token grants,
    as both ways in take it (REST and the /widget namespace)."""
    body.check_sizes(services.settings.max_attachment_bytes)
    async with services.db.tenant(grant.company_id) as conn:
        message, _ = await post_user_message(
            services,
            conn,
            company_id=grant.company_id,
            conversation_id=grant.conversation_id,
            content=body.content,
            attachments=body.attachment_list(),
            client_id=body.client_id,
        )
    return message


async def send_staff_message(
    services: Services, principal: Principal, conversation_id: UUID, body: NewStaffMessage
) -> dict[str, Any]:
    """A staff member's validated message, as both ways in take it (REST and
    the /dashboard namespace)."""
    body.check_sizes(services.settings.max_attachment_bytes)
    async with services.db.tenant(principal.company_id) as conn:
        return await post_staff_message(
            services.db,
            conn,
            company_id=principal.company_id,
            conversation_id=conversation_id,
            user_id=principal.user_id,
            content=body.content,
            attachments=body.attachment_list(),
            client_id=body.client_id,
        )


async def post_staff_message(
    db: Database,
    conn: asyncpg.Connection,
    *,
    company_id: UUID,
    conversation_id: UUID,
    user_id: UUID,
    content: str,
    attachments: list[dict[str, Any]] | None = None,
    client_id: str | None = None,
) -> dict[str, Any]:
    """A staff member writes into an active conversation (`sender_type: human`)."""
    conversation = found(await conversations.get(conn, conversation_id), "Conversation")
    if conversation["status"] != "active":
        raise ApiError.conflict(
            f"The conversation is {conversation['status']}", status=conversation["status"]
        )
    message, _ = await append_message(
        db,
        conn,
        company_id=company_id,
        conversation_id=conversation_id,
        sender_type="human",
        sender_id=user_id,
        content=content,
        attachments=attachments or [],
        client_id=client_id,
    )
    return message


async def set_takeover(
    db: Database,
    conn: asyncpg.Connection,
    *,
    company_id: UUID,
    conversation_id: UUID,
    user_id: UUID,
    taken: bool,
) -> dict[str, Any]:
    """A person takes over (the AI falls silent, a turn in flight stops) or
    hands back to the AI."""
    conversation = found(
        await conversations.set_ai_paused(conn, conversation_id, taken), "Conversation"
    )
    data = {"conversation_id": conversation_id, "by": "staff", "user_id": user_id}
    kind = "conversation.takeover" if taken else "conversation.release"
    db.publish_after_commit(conn, Event(kind, company_id, data))
    db.publish_after_commit(conn, Event("conversation.updated", company_id, conversation))
    return conversation


async def hand_off(
    db: Database,
    conn: asyncpg.Connection,
    *,
    company_id: UUID,
    conversation_id: UUID,
    reason: str,
    by: str,
) -> dict[str, Any] | None:
    """The AI hands the conversation to a person (its tool, or a workflow): it
    falls silent there, and owners and admins are notified."""
    conversation = await conversations.set_ai_paused(conn, conversation_id, True, handoff=True)
    if conversation is None:
        return None
    await notify(
        db,
        conn,
        company_id=company_id,
        type="handoff_requested",
        title="A customer is waiting for a person",
        body=reason,
        data={"conversation_id": str(conversation_id)},
    )
    db.publish_after_commit(
        conn,
        Event(
            "conversation.handoff",
            company_id,
            {"conversation_id": conversation_id, "reason": reason, "by": by},
        ),
    )
    return conversation
