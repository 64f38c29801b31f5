"""CRM (seed: CRM APIs): contacts and deals."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, EmailStr, Field, StringConstraints, model_validator

from http_api.routes import api
from http_api.routing import RESOURCE_ID, Call
from http_api.schemas import Page, RequestModel, omittable
from hub import crm
from hub.errors import ApiError, found
from hub.inputs import Integer, JsonObject
from hub.store import contacts, deals

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Phone = Annotated[str, StringConstraints(pattern=r"^\+?[0-9 ()./-]{5,30}$")]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=50)]
Stage = Literal["lead", "qualified", "proposal", "negotiation", "closed_won", "closed_lost"]
Money = Annotated[Decimal, Field(ge=0, le=Decimal("999999999999.99"), decimal_places=2)]


class ContactCreate(RequestModel):
    email: EmailStr | None = None
    first_name: Name | None = None
    last_name: Name | None = None
    company_name: Name | None = None
    phone: Phone | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    metadata: JsonObject = Field(default_factory=dict)

    @model_validator(mode="after")
    def _identifiable(self) -> ContactCreate:
        if not (self.email or self.phone or self.first_name or self.last_name):
            raise ValueError("a contact needs an email, a phone or a name")
        return self


class ContactUpdate(RequestModel):
    email: EmailStr | None = None
    first_name: Name | None = None
    last_name: Name | None = None
    company_name: Name | None = None
    phone: Phone | None = None
    tags: list[Tag] = omittable(max_length=50)
    metadata: JsonObject = omittable()


class Contact(BaseModel):
    id: UUID
    email: str | None
    first_name: str | None
    last_name: str | None
    company_name: str | None
    phone: str | None
    tags: list[str]
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class ContactConversation(BaseModel):
    id: UUID
    agent_id: UUID | None
    channel: str
    status: str
    started_at: datetime
    ended_at: datetime | None


class Deal(BaseModel):
    id: UUID
    contact_id: UUID | None
    title: str
    value: float
    currency: str
    stage: str
    probability: int
    expected_close_date: date | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None


class ContactDetail(Contact):
    conversations: list[ContactConversation]
    deals: list[Deal]


class ContactPage(BaseModel):
    contacts: list[Contact]
    total: int


class ContactQuery(Page):
    search: str | None = Field(None, min_length=1, max_length=200)


class DealCreate(RequestModel):
    title: Name
    contact_id: UUID | None = None
    value: Money = Decimal(0)
    currency: str = Field("USD", pattern=r"^[A-Z]{3}$")
    stage: Stage = "lead"
    probability: Integer = Field(10, ge=0, le=100)
    expected_close_date: date | None = None
    metadata: JsonObject = Field(default_factory=dict)


class DealUpdate(RequestModel):
    title: Name = omittable()
    contact_id: UUID | None = None
    value: Money = omittable()
    currency: str = omittable(pattern=r"^[A-Z]{3}$")
    stage: Stage = omittable()
    probability: Integer = omittable(ge=0, le=100)
    expected_close_date: date | None = None
    metadata: JsonObject = omittable()


class DealQuery(Page):
    stage: Stage | None = None
    contact_id: UUID | None = None


class DealPage(BaseModel):
    deals: list[Deal]
    total: int


class Deleted(BaseModel):
    id: UUID
    deleted: bool = True


@api.get("/api/crm/contacts", query=ContactQuery, response=ContactPage, tags=("crm",))
async def list_contacts(call: Call) -> dict:
    """Contacts, newest first; `search` matches names, email and company."""
    q: ContactQuery = call.query
    async with call.tenant() as conn:
        rows, total = await contacts.page(
            conn, call.user.company_id, limit=q.limit, offset=q.offset, search=q.search
        )
    return {"contacts": rows, "total": total}


@api.post(
    "/api/crm/contacts",
    body=ContactCreate,
    response=Contact,
    status=201,
    tags=("crm",),
    errors=(409,),
)
async def create_contact(call: Call) -> dict:
    """Create a contact; an email is unique within the company."""
    company_id = call.user.company_id
    async with call.tenant() as conn:
        contact = await crm.create_contact(
            call.services.db, conn, company_id, call.body.model_dump()
        )
    call.request[RESOURCE_ID] = str(contact["id"])
    return contact


@api.get("/api/crm/contacts/{id}", response=ContactDetail, tags=("crm",))
async def get_contact(call: Call) -> dict:
    """A contact with their conversations and deals."""
    async with call.tenant() as conn:
        contact = found(await contacts.get(conn, call.params["id"]), "Contact")
        contact["conversations"] = await contacts.conversations_of(conn, contact["id"])
        contact["deals"] = await deals.for_contact(conn, contact["id"])
    return contact


@api.patch(
    "/api/crm/contacts/{id}", body=ContactUpdate, response=Contact, tags=("crm",), errors=(409,)
)
async def update_contact(call: Call) -> dict:
    """Change some of a contact's fields."""
    company_id = call.user.company_id
    changes = call.body.model_dump(exclude_unset=True)
    async with call.tenant() as conn:
        contact = await crm.update_contact(
            call.services.db, conn, company_id, call.params["id"], changes
        )
    return found(contact, "Contact")


@api.delete("/api/crm/contacts/{id}", response=Deleted, tags=("crm",))
async def delete_contact(call: Call) -> dict:
    """Delete a contact (their conversations stay, without the link)."""
    async with call.tenant() as conn:
        found(await contacts.delete(conn, call.params["id"]), "Contact")
    return {"id": call.params["id"]}


async def _check_contact(conn, contact_id: UUID | None) -> None:
    # Another company's contact simply does not exist here (RLS), and saying
    # so in the same words as a made-up id reveals nothing.
    if contact_id is not None and await contacts.get(conn, contact_id) is None:
        raise ApiError.validation({"contact_id": "no such contact"})


@api.get("/api/crm/deals", query=DealQuery, response=DealPage, tags=("crm",))
async def list_deals(call: Call) -> dict:
    """Deals, newest first, by stage or contact."""
    q: DealQuery = call.query
    async with call.tenant() as conn:
        rows, total = await deals.page(
            conn,
            call.user.company_id,
            limit=q.limit,
            offset=q.offset,
            stage=q.stage,
            contact_id=q.contact_id,
        )
    return {"deals": rows, "total": total}


@api.post("/api/crm/deals", body=DealCreate, response=Deal, status=201, tags=("crm",))
async def create_deal(call: Call) -> dict:
    """Create a deal, optionally for a contact of the company."""
    async with call.tenant() as conn:
        await _check_contact(conn, call.body.contact_id)
        deal = await crm.create_deal(
            call.services.db, conn, call.user.company_id, call.body.model_dump()
        )
    call.request[RESOURCE_ID] = str(deal["id"])
    return deal


@api.get("/api/crm/deals/{id}", response=Deal, tags=("crm",))
async def get_deal(call: Call) -> dict:
    """One deal."""
    async with call.tenant() as conn:
        return found(await deals.get(conn, call.params["id"]), "Deal")


@api.patch("/api/crm/deals/{id}", body=DealUpdate, response=Deal, tags=("crm",))
async def update_deal(call: Call) -> dict:
    """Change a deal; moving to closed_won notifies owners and admins."""
    changes = call.body.model_dump(exclude_unset=True)
    async with call.tenant() as conn:
        if "contact_id" in changes:
            await _check_contact(conn, changes["contact_id"])
        deal = await crm.update_deal(
            call.services.db, conn, call.user.company_id, call.params["id"], changes
        )
    return found(deal, "Deal")


@api.delete("/api/crm/deals/{id}", response=Deleted, tags=("crm",))
async def delete_deal(call: Call) -> dict:
    """Delete a deal."""
    async with call.tenant() as conn:
        found(await deals.delete(conn, call.params["id"]), "Deal")
    return {"id": call.params["id"]}
