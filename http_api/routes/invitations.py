"""Invitations: how staff join a company — with a password of their own, or
as a user of the identity provider (Supabase) the hub is configured to trust
(hub.invitations says why a token as well as the email)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, EmailStr, Field

from http_api.routes import api
from http_api.routes.auth import MeOut, SessionOut, open_session
from http_api.routing import PRINCIPAL, RESOURCE_ID, Call
from http_api.schemas import RequestModel
from hub.auth import Principal, hash_password, invalid_token
from hub.errors import ApiError, found
from hub.invitations import accept, invite
from hub.store import invitations, users


class InvitationCreate(RequestModel):
    email: EmailStr
    role: Literal["admin", "member"] = "member"


class InvitationOut(BaseModel):
    id: UUID
    company_id: UUID
    email: str
    role: str
    status: Literal["pending", "accepted", "expired"]
    invited_by: UUID
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None = None
    user_id: UUID | None = None  # the user who accepted


class NewInvitation(InvitationOut):
    token: str  # shown once; only its hash is stored


class InvitationList(BaseModel):
    invitations: list[InvitationOut]


class Revoked(BaseModel):
    id: UUID
    revoked: bool = True


class InvitationAccept(RequestModel):
    token: str = Field(min_length=1, max_length=200)
    email: EmailStr
    password: str = Field(min_length=8, max_length=128)
    name: str | None = Field(None, max_length=200)


class InvitationLink(RequestModel):
    token: str = Field(min_length=1, max_length=200)


@api.post(
    "/api/invitations",
    roles=("owner", "admin"),
    body=InvitationCreate,
    response=NewInvitation,
    status=201,
    tags=("auth",),
    errors=(409,),
)
async def create_invitation(call: Call) -> dict:
    """Invite an email to the company with a role; the token (shown only in
    this answer) is what the person accepts with."""
    body: InvitationCreate = call.body
    async with call.services.db.system() as conn:
        # One company per user, and an address is one account hub-wide (as at sign-up).
        if await users.find_for_login(conn, body.email) is not None:
            raise ApiError.conflict("An account with this email exists", field="email")
    async with call.tenant() as conn:
        made = await invite(conn, call.user, body.email, body.role)
    call.request[RESOURCE_ID] = str(made["id"])
    return made


@api.get(
    "/api/invitations",
    roles=("owner", "admin"),
    response=InvitationList,
    tags=("auth",),
)
async def list_invitations(call: Call) -> dict:
    """The company's invitations, newest first, with their status."""
    async with call.tenant() as conn:
        return {"invitations": await invitations.list_for_company(conn, call.user.company_id)}


@api.delete(
    "/api/invitations/{id}",
    roles=("owner", "admin"),
    response=Revoked,
    tags=("auth",),
    errors=(409,),
)
async def revoke_invitation(call: Call) -> dict:
    """Revoke a pending invitation: its token stops working at once."""
    async with call.tenant() as conn:
        outcome = found(await invitations.revoke(conn, call.params["id"]), "Invitation")
    if outcome == "accepted":
        raise ApiError.conflict("This invitation was accepted; its user exists")
    return {"id": call.params["id"]}


@api.post(
    "/api/invitations/accept",
    auth="none",
    rate_limit="auth_ip",
    body=InvitationAccept,
    response=SessionOut,
    status=201,
    tags=("auth",),
    errors=(403, 404, 409),
)
async def accept_invitation(call: Call) -> dict:
    """Sign up by invitation: an account with the invited email and a
    password joins the inviting company with the invited role; returns a session."""
    body: InvitationAccept = call.body
    password_hash = await hash_password(body.password)
    async with call.services.db.system() as conn:
        user, company = await accept(
            conn, body.token, email=body.email, password_hash=password_hash, name=body.name
        )
    return open_session(call, user, company)


@api.post(
    "/api/invitations/link",
    auth="none",
    rate_limit="auth_ip",
    body=InvitationLink,
    response=MeOut,
    status=201,
    tags=("auth",),
    errors=(401, 403, 404, 409),
)
async def link_invitation(call: Call) -> dict:
    """Accept an invitation as a user of the identity provider: send its
    token as `Authorization: Bearer` (Supabase's access token). Its `email`
    must be the invited one; its `sub` is linked to the new hub user, so its
    tokens carry that user's company and role from then on."""
    scheme, _, raw = call.request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise ApiError.unauthorized()
    identity = await call.services.verifier.verify(raw.strip())
    if identity.anonymous:
        raise invalid_token("an anonymous session cannot accept an invitation")
    if identity.company_id is not None:
        raise ApiError.conflict("This token already names a company")
    async with call.services.db.system() as conn:
        if await users.linked(conn, identity.subject):
            raise ApiError.conflict("This identity is already a user of the hub")
        user, company = await accept(
            conn, call.body.token, email=identity.email, external_id=identity.subject
        )
    # Later middleware (audit) sees the caller as the user just made.
    call.request[PRINCIPAL] = Principal(user["id"], company["id"], user["role"], user["email"])
    call.request[RESOURCE_ID] = str(user["id"])
    return {"user": user, "company": company}
