"""Visitor attachments: what may be uploaded, and links that grant one file."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import unquote
from uuid import UUID

# Recognised by their first bytes, never by the name or the declared type.
_MAGIC = [
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
]


def sniff(data: bytes) -> str | None:
    """The type of an allowed file, or None."""
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    # Plain text: no control characters beyond whitespace.
    if all(c.isprintable() or c in "\r\n\t" for c in text[:4096]):
        return "text/plain"
    return None


def safe_name(name: str | None) -> str:
    # Clients percent-encode names; no directory part survives either way.
    base = unquote(name or "file").replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(c for c in base if c.isprintable() and c not in '"<>')
    return cleaned[:200] or "file"


def signature(secret: str, attachment_id: UUID) -> str:
    return hmac.new(secret.encode(), attachment_id.bytes, hashlib.sha256).hexdigest()[:32]


def valid_signature(secret: str, attachment_id: UUID, given: str) -> bool:
    return hmac.compare_digest(signature(secret, attachment_id), given)
