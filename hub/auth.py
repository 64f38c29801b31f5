"""Who is calling: JWT verification and minting, password hashing, the Principal.

Tokens are Supabase-compatible: `sub`, `email`, `role`, `exp`, `aud`, and the
company in `company_id` at the top level or in `app_metadata` (a token without
one, as Supabase's are, is placed by the hub's users table: `Core.authenticate`).
HS256 tokens are
checked with JWT_SECRET (the hub mints these itself); RS256/ES256 tokens are
checked against the keys at JWT_JWKS_URL. Each algorithm family only ever
meets its own kind of key, so an HS256 token signed with a public key is
refused rather than confused.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import aiohttp
import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from hub.config import Settings
from hub.errors import ApiError

ROLES = ("owner", "admin", "member")
DEFAULT_AUDIENCE = "authenticated"  # what Supabase puts in `aud`
ASYMMETRIC_ALGORITHMS = ("RS256", "ES256")
# Marks the hub's own tokens: their user is a row in `users`, so once that row
# is gone the token is refused. An identity provider's token that names its
# company needs no row; one that names none is placed by its row (services.py).
HUB_USER_CLAIM = "hub_user"


@dataclass(frozen=True)
class Identity:
    """What a verified token says: who (`sub`), and the company and role if it
    names them. `Core.authenticate` holds it against the users table."""

    subject: UUID
    company_id: UUID | None
    role: str
    email: str | None = None
    hub_user: bool = False
    # Supabase's anonymous sign-ins: a session with no person behind it.
    anonymous: bool = False
    expires_at: float | None = None  # the token's `exp`, unix seconds


@dataclass(frozen=True)
class Principal:
    user_id: UUID
    company_id: UUID
    role: str
    email: str | None = None
    # The token was minted by this hub for a row in `users` (HUB_USER_CLAIM).
    hub_user: bool = False

    def can(self, *roles: str) -> bool:
        return self.role in roles


def invalid_token(reason: str) -> ApiError:
    return ApiError.unauthorized(f"Invalid token: {reason}", "INVALID_TOKEN")


# Password hashing is deliberately slow; it runs in a thread so log-ins do not
# stall every other request on the event loop.
_hasher = PasswordHasher()


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False

    def check() -> bool:
        try:
            return _hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)


def mint_token(
    settings: Settings,
    *,
    user_id: UUID,
    company_id: UUID,
    role: str,
    email: str | None,
    ttl_seconds: int | None = None,
    hub_user: bool = False,
) -> tuple[str, int]:
    """A token for `user_id`; `hub_user` when that user is a row in `users`
    (sign-up, log-in, `hub token`), so the token dies with the row."""
    ttl = ttl_seconds or settings.jwt_ttl_seconds
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": str(user_id),
        "email": email,
        "role": role,
        "company_id": str(company_id),
        "app_metadata": {"company_id": str(company_id), "role": role},
        "aud": settings.jwt_audience or DEFAULT_AUDIENCE,
        "iat": now,
        "exp": now + ttl,
    }
    if hub_user:
        claims[HUB_USER_CLAIM] = True
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256"), ttl


class JwksCache:
    """Keys from JWT_JWKS_URL, refreshed when a token names a key we lack."""

    def __init__(self, url: str, refresh_after: float = 300.0, min_refetch: float = 10.0) -> None:
        self.url = url
        self.refresh_after = refresh_after
        self.min_refetch = min_refetch
        self._keys: dict[str, Any] = {}
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> Any:
        stale = time.monotonic() - self._fetched_at > self.refresh_after
        if stale or kid not in self._keys:
            await self._refresh()
        if kid in self._keys:
            return self._keys[kid]
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        raise invalid_token("unknown signing key")

    async def _refresh(self) -> None:
        async with self._lock:
            # A flood of tokens with made-up key ids must not become a flood of fetches.
            if time.monotonic() - self._fetched_at < self.min_refetch:
                return
            try:
                timeout = aiohttp.ClientTimeout(total=5)
                async with (
                    aiohttp.ClientSession(timeout=timeout) as session,
                    session.get(self.url) as response,
                ):
                    response.raise_for_status()
                    document = await response.json(content_type=None)
                keyset = jwt.PyJWKSet.from_dict(document)
            except (aiohttp.ClientError, TimeoutError, ValueError, jwt.PyJWTError) as exc:
                if not self._keys:
                    raise ApiError.unavailable(f"Cannot load signing keys: {exc}") from exc
                return  # keep serving with the keys we have
            self._keys = {k.key_id: k for k in keyset.keys}
            self._fetched_at = time.monotonic()


class TokenVerifier:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.jwks = JwksCache(settings.jwt_jwks_url) if settings.jwt_jwks_url else None

    async def verify(self, token: str) -> Identity:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise invalid_token("malformed") from None
        algorithm = header.get("alg")
        if algorithm == "HS256":
            key: Any = self.settings.jwt_secret
        elif algorithm in ASYMMETRIC_ALGORITHMS and self.jwks is not None:
            key = await self.jwks.key(header.get("kid"))
        else:
            raise invalid_token(f"algorithm {algorithm!r} is not accepted")
        options = {"require": ["exp", "sub", "aud"]}
        if self.settings.jwt_issuer:
            options["require"].append("iss")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self.settings.jwt_audience or DEFAULT_AUDIENCE,
                issuer=self.settings.jwt_issuer,
                options=options,
                leeway=30,
            )
        except jwt.ExpiredSignatureError:
            raise invalid_token("expired") from None
        except jwt.InvalidAudienceError:
            raise invalid_token("wrong audience") from None
        except jwt.InvalidIssuerError:
            raise invalid_token("wrong issuer") from None
        except jwt.InvalidSignatureError:
            raise invalid_token("bad signature") from None
        except jwt.PyJWTError as exc:
            raise invalid_token(str(exc)) from None
        return identity_from_claims(claims)


def identity_from_claims(claims: dict[str, Any]) -> Identity:
    metadata = claims.get("app_metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    try:
        user_id = UUID(str(claims["sub"]))
    except ValueError:
        raise invalid_token("sub is not a user id") from None
    raw_company = claims.get("company_id") or metadata.get("company_id")
    company_id = None
    if raw_company:
        try:
            company_id = UUID(str(raw_company))
        except ValueError:
            raise invalid_token("company_id is not a UUID") from None
    # Supabase puts its own role ("authenticated") at the top level; the
    # company role lives in app_metadata. Anything unknown is a member.
    role = metadata.get("role") if metadata.get("role") in ROLES else claims.get("role")
    if role not in ROLES:
        role = "member"
    email = claims.get("email")
    return Identity(
        user_id,
        company_id,
        role,
        email if isinstance(email, str) else None,
        hub_user=claims.get(HUB_USER_CLAIM) is True,
        anonymous=claims.get("is_anonymous") is True,
        expires_at=exp if isinstance(exp := claims.get("exp"), int | float) else None,
    )
