"""The public API (seed: Public APIs): what a website's visitors reach,
authenticated with the agent's publishable key and, per conversation, the
conversation token. CORS is open for these routes only (middleware.cors)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, Field

from http_api.multipart import form
from http_api.routes import api
from http_api.routing import RESOURCE_ID, Call, visitor_metadata
from http_api.schemas import NewVisitorMessage, QueryModel, RequestModel
from hub.conversations import send_visitor_message, start_conversation
from hub.errors import ApiError, found
from hub.inputs import MAX_SEQ, Integer, JsonObject
from hub.shapes import visible_to_visitor, visitor_view
from hub.store import agents, attachments, conversations, messages, ratings
from hub.uploads import safe_name, signature, sniff, valid_signature
from hub.visitors import ConversationGrant, mint_conversation_token

PUBLIC = {"auth": "key", "rate_limit": "public", "tags": ("public",)}
CONVERSATION = {**PUBLIC, "conversation_token": True}


class AgentProfile(BaseModel):
    id: UUID
    name: str
    avatar_url: str | None
    greeting: str | None
    theme: dict[str, Any]


class ConversationStart(RequestModel):
    agent_id: UUID
    channel: Literal["chat", "voice", "phone"] = "chat"
    metadata: JsonObject = Field(default_factory=dict, max_length=20)


class StartedConversation(BaseModel):
    id: UUID
    token: str
    expires_at: datetime
    agent: AgentProfile


class VisitorMessage(BaseModel):
    id: UUID
    conversation_id: UUID
    seq: int
    sender_type: str
    content: str
    attachments: list[dict[str, Any]]
    ai_metadata: dict[str, Any] | None
    metadata: dict[str, Any]
    reply_to: UUID | None
    created_at: datetime


class VisitorMessages(BaseModel):
    messages: list[VisitorMessage]


class HistoryQuery(QueryModel):
    after_seq: int = Field(0, ge=0, le=MAX_SEQ)
    limit: int = Field(100, ge=1, le=200)


class RatingBody(RequestModel):
    rating: Integer = Field(ge=1, le=5)
    comment: str | None = Field(None, max_length=2000)


class Rating(BaseModel):
    conversation_id: UUID
    rating: int
    comment: str | None
    created_at: datetime


class Uploaded(BaseModel):
    url: str
    type: str
    name: str
    size: int


async def _profile(call: Call, agent_id: UUID) -> dict[str, Any]:
    key = call.key
    if key is None or agent_id != key.agent_id:  # a key speaks for its own agent only
        raise ApiError.not_found("Agent")
    async with call.services.db.read(key.company_id) as conn:
        return found(await agents.public_profile(conn, agent_id), "Agent")


@api.get("/public/agents/{id}", response=AgentProfile, **PUBLIC)
async def public_agent(call: Call) -> dict:
    """The agent's public profile: name, avatar, greeting, theme."""
    return await _profile(call, call.params["id"])


@api.post(
    "/public/conversations",
    body=ConversationStart,
    response=StartedConversation,
    status=201,
    errors=(404,),  # an agent_id the key does not speak for
    **PUBLIC,
)
async def public_start(call: Call) -> dict:
    """Start a conversation; the token grants exactly this conversation."""
    body: ConversationStart = call.body
    profile = await _profile(call, body.agent_id)
    key = call.key
    assert key is not None
    metadata = {
        **body.metadata,
        **visitor_metadata(call.request, body.metadata.get("source", "widget")),
    }
    db = call.services.db
    async with db.tenant(key.company_id) as conn:
        conversation = await start_conversation(
            db,
            conn,
            company_id=key.company_id,
            agent_id=body.agent_id,
            channel=body.channel,
            metadata=metadata,
        )
    grant = ConversationGrant(conversation["id"], key.company_id, body.agent_id, key.id)
    token, expires_at = mint_conversation_token(call.services.settings, grant)
    call.request[RESOURCE_ID] = str(conversation["id"])
    return {"id": conversation["id"], "token": token, "expires_at": expires_at, "agent": profile}


@api.post(
    "/public/conversations/{id}/messages",
    body=NewVisitorMessage,
    response=VisitorMessage,
    status=201,
    errors=(409,),
    **CONVERSATION,
)
async def public_send(call: Call) -> dict:
    """Send a visitor message (the REST fallback of `message:send`)."""
    message = await send_visitor_message(call.services, call.visitor, call.body)
    return visitor_view(message)


@api.get(
    "/public/conversations/{id}/messages",
    query=HistoryQuery,
    response=VisitorMessages,
    **CONVERSATION,
)
async def public_history(call: Call) -> dict:
    """The conversation's messages after `after_seq`, in order."""
    grant = call.visitor
    async with call.services.db.tenant(grant.company_id) as conn:
        rows = await messages.page(
            conn, grant.conversation_id, limit=call.query.limit, after_seq=call.query.after_seq
        )
    return {"messages": [visitor_view(m) for m in rows if visible_to_visitor(m)]}


@api.post(
    "/public/conversations/{id}/rating",
    body=RatingBody,
    response=Rating,
    status=201,
    **CONVERSATION,
)
async def public_rating(call: Call) -> dict:
    """Rate the conversation 1–5; rating again replaces the rating."""
    grant = call.visitor
    async with call.services.db.tenant(grant.company_id) as conn:
        found(await conversations.get(conn, grant.conversation_id), "Conversation")
        return await ratings.upsert(
            conn,
            company_id=grant.company_id,
            conversation_id=grant.conversation_id,
            rating=call.body.rating,
            comment=call.body.comment,
        )


@api.post(
    "/public/conversations/{id}/attachments",
    response=Uploaded,
    status=201,
    errors=(413, 415),
    **CONVERSATION,
)
async def public_upload(call: Call) -> dict:
    """Upload a file (multipart `file`): images, PDF or plain text."""
    limit = call.services.settings.max_upload_bytes
    name, data = await _read_file(call.request, limit)
    kind = sniff(data)
    if kind is None:
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "Upload an image, a PDF or a text file")
    grant = call.visitor
    async with call.services.db.tenant(grant.company_id) as conn:
        stored = await attachments.create(
            conn,
            company_id=grant.company_id,
            conversation_id=grant.conversation_id,
            name=name,
            type=kind,
            data=data,
        )
    sig = signature(call.services.settings.jwt_secret, stored["id"])
    url = str(
        call.request.url.with_path(f"/public/attachments/{stored['id']}/{sig}").with_query(None)
    )
    return {"url": url, "type": kind, "name": stored["name"], "size": stored["size"]}


async def _read_file(request: web.Request, limit: int) -> tuple[str, bytes]:
    async with form(request, "file") as reader:
        while (part := await reader.next()) is not None:
            if part.name != "file":
                continue
            chunks, size = [], 0
            while chunk := await part.read_chunk(64 * 1024):
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, "PAYLOAD_TOO_LARGE", f"Files are limited to {limit} bytes")
                chunks.append(chunk)
            if not size:
                raise ApiError.validation({"file": "the file is empty"})
            return safe_name(part.filename), b"".join(chunks)
    raise ApiError.validation({"file": "a file field is required"})


@api.get(
    "/public/attachments/{id}/{sig}",
    tags=("public",),
    auth="none",
    rate_limit="none",  # the signed link is its permission
    produces="application/octet-stream",
)
async def public_attachment(call: Call) -> web.Response:
    """An uploaded file, to whoever holds its signed link."""
    attachment_id = call.params["id"]
    if not valid_signature(call.services.settings.jwt_secret, attachment_id, call.params["sig"]):
        raise ApiError.not_found("Attachment")
    async with call.services.db.system() as conn:
        stored = found(await attachments.get(conn, attachment_id), "Attachment")
    return web.Response(
        body=stored["data"],
        content_type=stored["type"],
        headers={
            "Content-Disposition": f'attachment; filename="{stored["name"]}"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, max-age=3600",
        },
    )
