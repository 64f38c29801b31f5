"""The knowledge base (seed: Knowledge Base APIs)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, Field

from http_api.multipart import form
from http_api.routes import api
from http_api.routing import RESOURCE_ID, Call
from http_api.schemas import RequestModel
from hub.errors import ApiError, found
from hub.events import Event
from hub.inputs import find_nul
from hub.store import agents
from hub.store import knowledge as store
from hub.uploads import document_type

SUPPORTED_MESSAGE = "Upload a PDF, DOCX, Markdown, HTML or plain-text file"


class Document(BaseModel):
    id: UUID
    agent_id: UUID | None
    title: str
    description: str | None
    filename: str | None
    content_type: str | None
    size: int
    status: str
    error: str | None
    # How the text was read, when the reader should know (characters removed).
    notice: str | None
    chunk_count: int
    created_at: datetime
    processed_at: datetime | None


class ChunkPreview(BaseModel):
    id: UUID
    position: int
    page: int | None
    heading: str | None
    content: str
    token_count: int


class DocumentDetail(Document):
    chunks: list[ChunkPreview]


class DocumentList(BaseModel):
    documents: list[Document]


class SearchBody(RequestModel):
    query: str = Field(min_length=1, max_length=2000, pattern=r"\S")
    limit: int = Field(5, ge=1, le=50)
    # The lowest score returned; every mode scores 0–1 (docs/knowledge.md, "Search").
    threshold: float | None = Field(None, ge=0, le=1)
    agent_id: UUID | None = None
    mode: Literal["vector", "keyword", "hybrid"] = "hybrid"


class SearchResult(BaseModel):
    document_id: UUID
    chunk_id: UUID
    content: str
    score: float
    metadata: dict[str, Any]


class SearchResults(BaseModel):
    results: list[SearchResult]
    mode: str


class Deleted(BaseModel):
    id: UUID
    deleted: bool = True


async def _read_upload(request: web.Request, limit: int) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    async with form(request, "upload") as reader:
        while (part := await reader.next()) is not None:
            if part.name == "file":
                chunks, size = [], 0
                while piece := await part.read_chunk(256 * 1024):
                    size += len(piece)
                    if size > limit:
                        raise ApiError(
                            413, "PAYLOAD_TOO_LARGE", f"Documents are limited to {limit} bytes"
                        )
                    chunks.append(piece)
                fields["file"] = b"".join(chunks)
                fields["filename"] = (
                    _storable("filename", part.filename or "").rsplit("/", 1)[-1][:200] or None
                )
            elif part.name in ("title", "description", "agent_id"):
                raw = await part.read(decode=True)
                value = _storable(part.name, raw.decode("utf-8", errors="replace")).strip()
                if len(value) > 2000:
                    raise ApiError.validation({part.name: "too long"})
                fields[part.name] = value or None
    return fields


def _storable(name: str, value: str) -> str:
    """A text field of the upload as PostgreSQL can store it, or a 400 naming
    the field: no NUL, and nothing that is not UTF-8 (a file name's raw
    header bytes reach us as surrogates)."""
    if find_nul(value):
        raise ApiError.validation({name: "NUL characters are not allowed"})
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError.validation({name: "not valid UTF-8"}) from None
    return value


@api.post(
    "/api/knowledge-base/upload",
    response=Document,
    status=201,
    tags=("knowledge",),
    errors=(413, 415),
)
async def upload(call: Call) -> dict:
    """Upload a document (multipart: file, title, description, agent_id).

    It is processed in the background: pending → processing → processed or failed."""
    fields = await _read_upload(call.request, call.services.settings.knowledge_max_upload_bytes)
    data = fields.get("file")
    if not data:
        raise ApiError.validation({"file": "a non-empty file is required"})
    kind = document_type(data, fields.get("filename"))
    if kind is None:
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", SUPPORTED_MESSAGE)
    agent_id = None
    if fields.get("agent_id"):
        try:
            agent_id = UUID(fields["agent_id"])
        except ValueError:
            raise ApiError.validation({"agent_id": "not an id"}) from None
    title = fields.get("title") or fields.get("filename") or "Untitled document"
    async with call.tenant() as conn:
        if agent_id is not None and await agents.get(conn, agent_id) is None:
            raise ApiError.validation({"agent_id": "no such agent"})
        document = await store.create_document(
            conn,
            company_id=call.user.company_id,
            agent_id=agent_id,
            title=title[:200],
            description=fields.get("description"),
            filename=fields.get("filename"),
            content_type=kind,
            data=data,
        )
        call.services.db.publish_after_commit(
            conn, Event("knowledge.queued", call.user.company_id, {"document_id": document["id"]})
        )
    call.services.knowledge.wake()
    call.request[RESOURCE_ID] = str(document["id"])
    return document


@api.get("/api/knowledge-base", response=DocumentList, tags=("knowledge",))
async def list_documents(call: Call) -> dict:
    """The company's documents, newest first."""
    async with call.tenant() as conn:
        return {"documents": await store.list_documents(conn, call.user.company_id)}


@api.get("/api/knowledge-base/{id}", response=DocumentDetail, tags=("knowledge",))
async def get_document(call: Call) -> dict:
    """A document with a preview of its chunks."""
    async with call.tenant() as conn:
        document = found(await store.get_document(conn, call.params["id"]), "Document")
        document["chunks"] = await store.chunk_preview(conn, document["id"])
    return document


@api.delete("/api/knowledge-base/{id}", response=Deleted, tags=("knowledge",))
async def delete_document(call: Call) -> dict:
    """Delete a document; its chunks leave search at once."""
    company_id = call.user.company_id
    async with call.tenant() as conn:
        removed = await store.vector_ids_of(conn, call.params["id"])
        found(await store.delete_document(conn, call.params["id"]), "Document")
        change = {"document_id": call.params["id"], "removed": removed, "added": []}
        call.services.db.publish_after_commit(conn, Event("knowledge.changed", company_id, change))
    # This process follows at once, before it answers; the others on the event.
    await call.services.knowledge.apply_change(company_id, change)
    return {"id": call.params["id"]}


@api.post("/api/knowledge-base/{id}/reprocess", response=Document, tags=("knowledge",))
async def reprocess(call: Call) -> dict:
    """Process a document again (after a failure, or a change of embedding model)."""
    async with call.tenant() as conn:
        document = found(await store.requeue(conn, call.params["id"]), "Document")
    call.services.knowledge.wake()
    return document


@api.post(
    "/api/knowledge-base/search",
    body=SearchBody,
    response=SearchResults,
    tags=("knowledge",),
    audited=False,  # a search changes nothing
)
async def search(call: Call) -> dict:
    """Search the knowledge base: vector, keyword (full text) or hybrid (both, fused)."""
    body: SearchBody = call.body
    results = await call.services.knowledge.search(
        call.user.company_id,
        body.query,
        limit=body.limit,
        threshold=body.threshold,
        agent_id=body.agent_id,
        mode=body.mode,
    )
    return {"results": results, "mode": body.mode}
