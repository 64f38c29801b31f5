"""Conversations and their messages, for staff (seed: Conversation APIs)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field, StringConstraints

from http_api.routes import api
from http_api.routing import Call
from http_api.schemas import (
    DateRange,
    Message,
    NewStaffMessage,
    QueryModel,
    RequestModel,
    omittable,
)
from hub.conversations import send_staff_message, update_conversation
from hub.errors import found
from hub.inputs import MAX_SEQ, JsonObject
from hub.store import conversations, messages

Status = Literal["active", "ended", "archived"]
Channel = Literal["chat", "voice", "phone"]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=50)]


class ConversationQuery(DateRange):
    limit: int = Field(20, ge=1, le=50)
    offset: int = Field(0, ge=0, le=1_000_000)
    status: Status | None = None
    agent_id: UUID | None = None
    channel: Channel | None = None
    contact_id: UUID | None = None
    # true: active, handed off by the AI and not yet taken by a person; false: the others.
    waiting: bool | None = None


class Conversation(BaseModel):
    id: UUID
    agent_id: UUID | None
    contact_id: UUID | None
    channel: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    last_message_at: datetime | None
    tags: list[str]
    metadata: dict[str, Any]
    ai_paused: bool  # a person has taken over, or the AI handed off: the AI is silent
    handoff_requested_at: datetime | None  # set while a handoff waits for a person


class ConversationPage(BaseModel):
    conversations: list[Conversation]
    total: int


class ConversationUpdate(RequestModel):
    status: Status = omittable()
    tags: list[Tag] = omittable(max_length=50)
    metadata: JsonObject = omittable()


class MessageQuery(QueryModel):
    limit: int = Field(50, ge=1, le=200)
    after_seq: int | None = Field(None, ge=0, le=MAX_SEQ)
    before_seq: int | None = Field(None, ge=1, le=MAX_SEQ)


class MessagePage(BaseModel):
    messages: list[Message]


@api.get(
    "/api/conversations",
    query=ConversationQuery,
    response=ConversationPage,
    tags=("conversations",),
)
async def list_conversations(call: Call) -> dict:
    """Conversations, newest first, with the total for the filter."""
    q: ConversationQuery = call.query
    started_from, started_before = q.bounds()
    async with call.read() as conn:
        rows, total = await conversations.page(
            conn,
            call.user.company_id,
            limit=q.limit,
            offset=q.offset,
            status=q.status,
            agent_id=q.agent_id,
            channel=q.channel,
            contact_id=q.contact_id,
            started_from=started_from,
            started_before=started_before,
            waiting=q.waiting,
        )
    return {"conversations": rows, "total": total}


@api.get("/api/conversations/{id}", response=Conversation, tags=("conversations",))
async def get_conversation(call: Call) -> dict:
    """One conversation."""
    async with call.read() as conn:
        return found(await conversations.get(conn, call.params["id"]), "Conversation")


@api.patch(
    "/api/conversations/{id}",
    body=ConversationUpdate,
    response=Conversation,
    tags=("conversations",),
)
async def patch_conversation(call: Call) -> dict:
    """Change status, tags or metadata; ending stamps ended_at."""
    async with call.tenant() as conn:
        conversation = await update_conversation(
            call.services.db,
            conn,
            company_id=call.user.company_id,
            conversation_id=call.params["id"],
            fields=call.body.model_dump(exclude_unset=True),
            by="staff",
        )
    return found(conversation, "Conversation")


@api.get(
    "/api/conversations/{id}/messages",
    query=MessageQuery,
    response=MessagePage,
    tags=("conversations",),
)
async def list_messages(call: Call) -> dict:
    """Messages in order; `after_seq` to resume, `before_seq` to scroll back."""
    q: MessageQuery = call.query
    async with call.read() as conn:
        found(await conversations.get(conn, call.params["id"]), "Conversation")
        rows = await messages.page(
            conn, call.params["id"], limit=q.limit, after_seq=q.after_seq, before_seq=q.before_seq
        )
    return {"messages": rows}


@api.post(
    "/api/conversations/{id}/messages",
    body=NewStaffMessage,
    response=Message,
    status=201,
    tags=("conversations",),
    errors=(409,),
)
async def send_message(call: Call) -> dict:
    """A staff member writes into the conversation (sender_type "human")."""
    return await send_staff_message(call.services, call.user, call.params["id"], call.body)
