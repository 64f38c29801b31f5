"""Joining a company by invitation: an owner or admin invites an email with a
role, and the person accepts with the invitation's token and an identity
carrying that email — an account signed up with the hub, or an identity
provider's (Supabase's) user, whose `sub` is then linked to the new hub user.

Why the token as well as the email: neither the hub's sign-up nor every
identity provider proves that whoever holds an address owns it (Supabase
issues sessions before confirmation when "Confirm email" is off; anyone can
sign up with the hub under any address). An address alone would let whoever
registers it first join the company. The token, sent to the person by the
inviter, is the secret; the email must match as well, so a forwarded or
leaked token still only admits the person it names (docs/api.md "Team").
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from hub.auth import Principal
from hub.errors import ApiError
from hub.store import companies, invitations, users

# Long enough to reach someone on leave for a week, short enough that a
# forgotten invitation does not stay a way in.
VALID_FOR = timedelta(days=7)
TOKEN_PREFIX = "inv_"


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def invite(
    conn: asyncpg.Connection, inviter: Principal, email: str, role: str
) -> dict[str, Any]:
    """A new invitation with its token (shown once; only its hash is kept).
    Tenant transaction of the inviter's company."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = await invitations.create(
        conn,
        company_id=inviter.company_id,
        email=email,
        role=role,
        token_hash=token_hash(token),
        invited_by=inviter.user_id,
        expires_at=datetime.now(UTC) + VALID_FOR,
    )
    if row is None:
        raise ApiError.conflict("This email has an open invitation: revoke it first", field="email")
    return {**row, "token": token}


async def accept(
    conn: asyncpg.Connection,
    token: str,
    *,
    email: str | None,
    password_hash: str | None = None,
    name: str | None = None,
    external_id: UUID | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The invited user, made in the invitation's company with its role, and
    that company. System transaction: the token names the company."""
    invitation = await invitations.take_open(conn, token_hash(token))
    if invitation is None:
        raise ApiError.not_found("Invitation (revoked, used or expired)")
    if email is None or email.lower() != invitation["email"].lower():
        raise ApiError.forbidden("This invitation is for another email")
    user = await users.create(
        conn,
        company_id=invitation["company_id"],
        email=invitation["email"],
        name=name,
        role=invitation["role"],
        password_hash=password_hash,
        external_id=external_id,
    )
    if user is None:
        raise ApiError.conflict("An account with this email exists", field="email")
    await invitations.mark_accepted(conn, invitation["id"], user["id"])
    return user, await companies.get(conn, invitation["company_id"])
