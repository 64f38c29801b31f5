"""The audit log of mutating calls, for owners and admins."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel

from http_api.routes import api
from http_api.routing import Call
from http_api.schemas import Page
from hub.store import audit


class AuditEntry(BaseModel):
    id: int
    user_id: UUID | None
    method: str
    path: str
    resource_id: str | None
    status: int
    ip: str | None
    request_id: str
    created_at: datetime


class AuditPage(BaseModel):
    entries: list[AuditEntry]
    total: int


@api.get(
    "/api/audit-log", roles=("owner", "admin"), query=Page, response=AuditPage, tags=("audit",)
)
async def list_audit_log(call: Call) -> dict:
    """Mutating calls, newest first."""
    async with call.tenant() as conn:
        entries, total = await audit.page(
            conn, call.user.company_id, call.query.limit, call.query.offset
        )
    return {"entries": entries, "total": total}
