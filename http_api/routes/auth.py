"""Built-in accounts, so the hub runs without an external identity provider."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, EmailStr, Field

from http_api.routes import api
from http_api.routing import PRINCIPAL, RESOURCE_ID, Call
from http_api.schemas import RequestModel
from hub.auth import Principal, hash_password, mint_token, verify_password
from hub.errors import ApiError
from hub.store import companies, users


class SignupBody(RequestModel):
    email: EmailStr
    password: str = Field(min_length=8, max_length=128)
    company_name: str = Field(min_length=1, max_length=200)
    name: str | None = Field(None, max_length=200)


class LoginBody(RequestModel):
    email: EmailStr
    password: str = Field(min_length=1, max_length=128)


class UserOut(BaseModel):
    id: UUID
    email: str | None
    name: str | None = None
    role: str
    company_id: UUID
    created_at: datetime | None = None


class CompanyOut(BaseModel):
    id: UUID
    name: str
    created_at: datetime | None = None


class SessionOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    user: UserOut
    company: CompanyOut


class MeOut(BaseModel):
    user: UserOut
    company: CompanyOut | None


def open_session(call: Call, user: dict, company: dict) -> dict:
    token, ttl = mint_token(
        call.services.settings,
        user_id=user["id"],
        company_id=company["id"],
        role=user["role"],
        email=user["email"],
        hub_user=True,
    )
    # Later middleware (audit) sees the caller as the account just entered.
    call.request[PRINCIPAL] = Principal(user["id"], company["id"], user["role"], user["email"])
    call.request[RESOURCE_ID] = str(user["id"])
    return {"access_token": token, "expires_in": ttl, "user": user, "company": company}


@api.post(
    "/api/auth/signup",
    auth="none",
    rate_limit="auth_ip",
    body=SignupBody,
    response=SessionOut,
    status=201,
    tags=("auth",),
    errors=(409,),
)
async def signup(call: Call) -> dict:
    """Create a company and its owner; returns a session."""
    body: SignupBody = call.body
    password_hash = await hash_password(body.password)
    async with call.services.db.system() as conn:
        company = await companies.create(conn, body.company_name)
        user = await users.create(
            conn,
            company_id=company["id"],
            email=body.email,
            name=body.name,
            role="owner",
            password_hash=password_hash,
        )
        if user is None:
            # Raising rolls the company back with the transaction.
            raise ApiError.conflict("An account with this email exists", field="email")
    return open_session(call, user, company)


@api.post(
    "/api/auth/login",
    auth="none",
    rate_limit="auth_ip",
    body=LoginBody,
    response=SessionOut,
    tags=("auth",),
    errors=(401,),
)
async def login(call: Call) -> dict:
    """Exchange email and password for a session."""
    body: LoginBody = call.body
    async with call.services.db.system() as conn:
        user = await users.find_for_login(conn, body.email)
        company = await companies.get(conn, user["company_id"]) if user else None
    if user is None or not await verify_password(user.pop("password_hash"), body.password):
        raise ApiError.unauthorized("Wrong email or password", "INVALID_CREDENTIALS")
    return open_session(call, user, company)


@api.get("/api/auth/me", response=MeOut, tags=("auth",))
async def me(call: Call) -> dict:
    """The caller's user and company."""
    principal = call.user
    async with call.tenant() as conn:
        user = await users.get(conn, principal.user_id)
        company = await companies.get(conn, principal.company_id)
    if user is None:  # an identity provider's token naming its company: the token is the record
        user = {
            "id": principal.user_id,
            "email": principal.email,
            "role": principal.role,
            "company_id": principal.company_id,
        }
    return {"user": user, "company": company}
