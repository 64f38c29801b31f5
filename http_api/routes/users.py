"""The company's staff accounts, so the dashboard can say who did what."""

from __future__ import annotations

from pydantic import BaseModel

from http_api.routes import api
from http_api.routes.auth import UserOut
from http_api.routing import Call
from hub.store import users


class UserList(BaseModel):
    users: list[UserOut]


@api.get("/api/users", response=UserList, tags=("auth",))
async def list_users(call: Call) -> dict:
    """The company's accounts, oldest first, those linked to an identity
    provider included (one whose tokens name the company themselves needs no
    account, so is not listed)."""
    async with call.tenant() as conn:
        return {"users": await users.list_for_company(conn, call.user.company_id)}
