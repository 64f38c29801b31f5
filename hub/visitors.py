"""Who a visitor is: publishable keys and conversation tokens.

A publishable key (`pk_...`) is embedded in a web page, so it is public by
design: it only names an agent and the origins it may be used from. What a
visitor holds after starting a conversation is a conversation token: signed
by the hub, expiring, and good for that one conversation.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import asyncpg
import jwt

from hub.config import Settings
from hub.db import Database
from hub.errors import ApiError
from hub.origins import normalise_origin
from hub.store import keys

KEY_PREFIX = "pk_"
CONVERSATION_AUDIENCE = "syntera:conversation"  # never accepted as a staff token, nor the reverse
CONVERSATION_TTL = 7 * 24 * 3600


def new_key() -> tuple[str, bytes, str]:
    """A fresh key, its hash (what is stored) and a prefix to recognise it by."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return key, key_hash(key), key[:12]


def key_hash(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


@dataclass(frozen=True)
class PublishableKey:
    id: UUID
    company_id: UUID
    agent_id: UUID
    allowed_origins: tuple[str, ...]

    def allows(self, origin: str | None) -> bool:
        # Without an Origin header the caller is not a browser, and a non-browser
        # can claim any origin anyway: the list protects against other sites'
        # pages using the key, which browsers always label with their origin.
        if not origin:
            return True
        return "*" in self.allowed_origins or normalise_origin(origin) in self.allowed_origins


def invalid_key(reason: str = "Invalid or revoked publishable key") -> ApiError:
    return ApiError.unauthorized(reason, "INVALID_KEY")


async def resolve_key(db: Database, header: str | None, origin: str | None) -> PublishableKey:
    scheme, _, raw = (header or "").partition(" ")
    raw = raw.strip()
    if scheme.lower() != "bearer" or not raw.startswith(KEY_PREFIX):
        raise invalid_key("A publishable key is required: Authorization: Bearer pk_...")
    async with db.system_read() as conn:
        row = await keys.find_active(conn, key_hash(raw))
    if row is None:
        raise invalid_key()
    key = PublishableKey(
        row["id"], row["company_id"], row["agent_id"], tuple(row["allowed_origins"])
    )
    _check_origin(key, origin)
    return key


def _check_origin(key: PublishableKey, origin: str | None) -> None:
    if not key.allows(origin):
        raise ApiError.origin_not_allowed("This key may not be used from this origin", origin)


@dataclass(frozen=True)
class ConversationGrant:
    conversation_id: UUID
    company_id: UUID
    agent_id: UUID
    key_id: UUID


def mint_conversation_token(
    settings: Settings, grant: ConversationGrant, ttl: int = CONVERSATION_TTL
) -> tuple[str, datetime]:
    expires = int(time.time()) + ttl
    token = jwt.encode(
        {
            "aud": CONVERSATION_AUDIENCE,
            "sub": str(grant.conversation_id),
            "company_id": str(grant.company_id),
            "agent_id": str(grant.agent_id),
            "key_id": str(grant.key_id),
            "exp": expires,
        },
        settings.jwt_secret,
        algorithm="HS256",
    )
    return token, datetime.fromtimestamp(expires, UTC)


def verify_conversation_token(settings: Settings, token: str | None) -> ConversationGrant:
    if not token:
        raise ApiError.unauthorized("A conversation token is required", "INVALID_TOKEN")
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=["HS256"],
            audience=CONVERSATION_AUDIENCE,
            options={"require": ["exp", "sub", "aud"]},
        )
        return ConversationGrant(
            UUID(claims["sub"]),
            UUID(claims["company_id"]),
            UUID(claims["agent_id"]),
            UUID(claims["key_id"]),
        )
    except jwt.ExpiredSignatureError:
        raise ApiError.unauthorized("The conversation token expired", "INVALID_TOKEN") from None
    except (jwt.PyJWTError, KeyError, ValueError):
        raise ApiError.unauthorized("Invalid conversation token", "INVALID_TOKEN") from None


async def verify_visitor(
    db: Database, settings: Settings, token: str | None, origin: str | None
) -> ConversationGrant:
    """A visitor's conversation token, as every real-time door checks it (the
    widget's socket, the voice socket): signed and unexpired, its publishable
    key not revoked since, and used from an origin that key allows."""
    grant = verify_conversation_token(settings, token)
    async with db.system_read() as conn:
        await check_grant_key(conn, grant, origin)
    return grant


async def check_grant_key(
    conn: asyncpg.Connection, grant: ConversationGrant, origin: str | None
) -> bool:
    """The key a verified conversation token names is not revoked and allows
    `origin`; whether the token's conversation still exists. One statement:
    the widget's socket asks both on connect, which is what a reconnect storm
    after a deploy is made of."""
    row = await keys.is_active(conn, grant.key_id, grant.conversation_id)
    if row is None:
        raise invalid_key()
    key = PublishableKey(row["id"], grant.company_id, grant.agent_id, tuple(row["allowed_origins"]))
    _check_origin(key, origin)
    return row["conversation_exists"]
