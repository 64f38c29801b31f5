"""GDPR: export and erasure per contact, export per company, retention."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from http_api.routes import api
from http_api.routing import Call
from http_api.schemas import RequestModel
from hub import gdpr as data_protection
from hub import jsoncodec
from hub.errors import found
from hub.store import gdpr


class Erased(BaseModel):
    erased: bool = True
    conversations: int
    messages: int


class Retention(RequestModel):
    days: int | None = Field(ge=1, le=3650)


def _download(body: bytes, name: str) -> web.Response:
    return web.Response(
        body=body,
        content_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@api.get("/api/gdpr/contacts/{id}/export", tags=("gdpr",))
async def export_contact(call: Call) -> web.Response:
    """Everything held about a contact, as a JSON download."""
    data = found(
        await data_protection.export_contact(
            call.services.db, call.user.company_id, call.params["id"]
        ),
        "Contact",
    )
    return _download(jsoncodec.dumps(data), f"contact-{call.params['id']}.json")


@api.delete("/api/gdpr/contacts/{id}", roles=("owner", "admin"), response=Erased, tags=("gdpr",))
async def erase_contact(call: Call) -> dict:
    """Erase a contact and what their conversations said; counts stay."""
    async with call.tenant() as conn:
        result = await gdpr.erase_contact(conn, call.params["id"])
    return found(result, "Contact")


@api.get("/api/gdpr/export", roles=("owner",), tags=("gdpr",))
async def export_company(call: Call) -> web.StreamResponse:
    """The whole company's data as a streamed JSON download (owners)."""
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/json",
            "Content-Disposition": f'attachment; filename="company-{call.user.company_id}.json"',
        }
    )
    await response.prepare(call.request)
    async for piece in data_protection.export_company(call.services.db, call.user.company_id):
        await response.write(piece)
    await response.write_eof()
    return response


@api.get("/api/gdpr/retention", response=Retention, tags=("gdpr",))
async def get_retention(call: Call) -> dict:
    """Days after which conversations are deleted (null: kept)."""
    async with call.tenant() as conn:
        return {"days": await gdpr.retention_days(conn, call.user.company_id)}


@api.route(
    "PUT",
    "/api/gdpr/retention",
    roles=("owner", "admin"),
    body=Retention,
    response=Retention,
    tags=("gdpr",),
)
async def set_retention(call: Call) -> dict:
    """Set the retention period in days, or null to keep conversations."""
    async with call.tenant() as conn:
        await gdpr.set_retention_days(conn, call.user.company_id, call.body.days)
    return {"days": call.body.days}
