"""What the voice worker is told about a call, signed by the hub.

A LiveKit job carries metadata that anyone holding the LiveKit API key can
write, and a room's metadata can come from a visitor's token request. The
worker acts on a company's data on the strength of it, so the hub signs the
claims (HS256 with the hub's JWT secret, an audience of their own) and the
worker verifies them before it touches anything.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal
from uuid import UUID

import jwt

from hub.config import Settings

# The worker registers under this name, so LiveKit dispatches it explicitly
# (by a token's room configuration, the dispatch API or a SIP dispatch rule),
# never into every room.
AGENT_NAME = "syntera-voice"
AUDIENCE = "syntera:voice-call"

Channel = Literal["voice", "phone"]


class InvalidClaims(Exception):
    """Metadata the hub did not sign, or that expired: the worker refuses the job."""


@dataclass(frozen=True)
class CallClaims:
    company_id: UUID
    agent_id: UUID
    channel: Channel
    # A web call's conversation exists before the call; a phone call's
    # conversation is created by the worker when the call comes in.
    conversation_id: UUID | None = None
    phone_number: str | None = None  # the number that was called (SIP)


def sign(settings: Settings, claims: CallClaims, ttl: int | None) -> str:
    """`ttl` None: no expiry, for SIP dispatch rules that live until changed
    (the worker still checks the number is routed to that company)."""
    payload: dict = {
        "aud": AUDIENCE,
        "company_id": str(claims.company_id),
        "agent_id": str(claims.agent_id),
        "channel": claims.channel,
    }
    if claims.conversation_id is not None:
        payload["conversation_id"] = str(claims.conversation_id)
    if claims.phone_number is not None:
        payload["phone_number"] = claims.phone_number
    if ttl is not None:
        payload["exp"] = int(time.time()) + ttl
    return jwt.encode(payload, settings.jwt_secret, algorithm="HS256")


def verify(settings: Settings, token: str | None) -> CallClaims:
    if not token:
        raise InvalidClaims("the job carries no call claims")
    try:
        payload = jwt.decode(token, settings.jwt_secret, algorithms=["HS256"], audience=AUDIENCE)
        channel = payload["channel"]
        if channel not in ("voice", "phone"):
            raise InvalidClaims(f"unknown channel {channel!r}")
        conversation = payload.get("conversation_id")
        return CallClaims(
            company_id=UUID(payload["company_id"]),
            agent_id=UUID(payload["agent_id"]),
            channel=channel,
            conversation_id=UUID(conversation) if conversation else None,
            phone_number=payload.get("phone_number"),
        )
    except jwt.ExpiredSignatureError:
        raise InvalidClaims("the call claims expired") from None
    except (jwt.PyJWTError, KeyError, ValueError, TypeError) as exc:
        raise InvalidClaims(f"the call claims are not the hub's: {exc}") from None
