"""Twilio's side of a phone call: the webhook's signature, the TwiML that
connects the call to a media stream, the token that binds that stream to the
call the webhook accepted, and G.711 μ-law, the streams' audio.

Twilio signs each webhook: base64(HMAC-SHA1(auth token, the URL it called +
every POST parameter's name and value, sorted by name)). The stream itself
(a WebSocket Twilio opens after our TwiML) carries no signature, so the TwiML
hands Twilio a short-lived token as a custom parameter, which comes back in
the stream's `start` message: only a call that passed the webhook gets a
stream, and only for the number and tenant the webhook resolved.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from uuid import UUID
from xml.sax.saxutils import quoteattr

import jwt
import numpy as np

from hub.config import Settings

STREAM_AUDIENCE = "syntera:twilio-stream"
STREAM_TOKEN_TTL = 120  # seconds: Twilio opens the stream right after the webhook
SAMPLE_RATE = 8000  # Twilio Media Streams: μ-law, 8 kHz, mono


def signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    payload = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def valid_signature(auth_token: str, url: str, params: Mapping[str, str], given: str) -> bool:
    return hmac.compare_digest(signature(auth_token, url, params), given or "")


@dataclass(frozen=True)
class StreamGrant:
    company_id: UUID
    agent_id: UUID
    call_sid: str
    called: str
    caller: str | None


class InvalidStreamToken(Exception):
    pass


def mint_stream_token(settings: Settings, grant: StreamGrant) -> str:
    return jwt.encode(
        {
            "aud": STREAM_AUDIENCE,
            "company_id": str(grant.company_id),
            "agent_id": str(grant.agent_id),
            "call_sid": grant.call_sid,
            "called": grant.called,
            "caller": grant.caller,
            "exp": int(time.time()) + STREAM_TOKEN_TTL,
        },
        settings.jwt_secret,
        algorithm="HS256",
    )


def verify_stream_token(settings: Settings, token: object) -> StreamGrant:
    if not isinstance(token, str) or not token:
        raise InvalidStreamToken("the stream carries no token")
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=["HS256"],
            audience=STREAM_AUDIENCE,
            options={"require": ["exp", "aud"]},
        )
        return StreamGrant(
            UUID(claims["company_id"]),
            UUID(claims["agent_id"]),
            str(claims["call_sid"]),
            str(claims["called"]),
            claims.get("caller"),
        )
    except jwt.ExpiredSignatureError:
        raise InvalidStreamToken("the stream token expired") from None
    except (jwt.PyJWTError, KeyError, ValueError, TypeError):
        raise InvalidStreamToken("the stream token is not the hub's") from None


def connect_twiml(stream_url: str, token: str) -> str:
    """Connect the call to our media stream; the token rides as a parameter
    (Twilio drops query strings from Stream URLs)."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Response><Connect><Stream url={quoteattr(stream_url)}>"
        f'<Parameter name="token" value={quoteattr(token)}/>'
        "</Stream></Connect></Response>"
    )


# -- G.711 μ-law ------------------------------------------------------------------

_BIAS = 0x84


def _decode_table() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (u >> 4) & 0x07
    sample = ((((u & 0x0F) << 3) + _BIAS) << exponent) - _BIAS
    return np.where(u & 0x80, -sample, sample).astype(np.int16)


def _encode_table() -> np.ndarray:
    # The 14-bit form of G.711 (as CPython's audioop did), indexed by sample + 32768.
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 2
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(pcm), 8159) + 0x21
    ends = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
    segment = np.searchsorted(ends, magnitude)
    value = np.where(segment > 7, 0x7F, (segment << 4) | ((magnitude >> (segment + 1)) & 0x0F))
    return (value ^ mask).astype(np.uint8)


_DECODE = _decode_table()
_ENCODE = _encode_table()


def ulaw_to_pcm16(data: bytes) -> bytes:
    return _DECODE[np.frombuffer(data, dtype=np.uint8)].tobytes()


def pcm16_to_ulaw(data: bytes) -> bytes:
    samples = np.frombuffer(data, dtype=np.int16).astype(np.int32) + 32768
    return _ENCODE[samples].tobytes()
