"""Visitor attachments: what may be uploaded, and links that grant one file."""

from __future__ import annotations

import codecs
import hashlib
import hmac
import io
import re
import zipfile
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
    # As bytes: a link may carry any characters, and compare_digest refuses
    # non-ASCII strings.
    return hmac.compare_digest(
        signature(secret, attachment_id).encode(), given.encode("utf-8", "replace")
    )


TEXT_SNIFF_BYTES = 65536


def document_type(data: bytes, filename: str | None) -> str | None:
    """A knowledge document's type from its content (and, for text, its name),
    or None when it is not one the knowledge base reads."""
    name = (filename or "").lower()
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    if data.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                if "word/document.xml" in archive.namelist():
                    return "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        except zipfile.BadZipFile:
            pass
        return None
    # A prefix is enough to tell; cut mid-character, its last bytes wait for
    # the rest (final=False) rather than read as an invalid byte.
    prefix = data[:TEXT_SNIFF_BYTES]
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(
            prefix, final=len(prefix) == len(data)
        )
    except UnicodeDecodeError:
        return None
    if "\x00" in text:
        return None
    head = text.lstrip()[:1000].lower()
    if (
        name.endswith((".html", ".htm"))
        or head.startswith(("<!doctype html", "<html"))
        or (head.startswith("<") and re.search(r"<(body|p|div|h[1-6])[\s>]", head))
    ):
        return "text/html"
    if name.endswith((".md", ".markdown")) or re.search(r"^#{1,6} \S", text, re.MULTILINE):
        return "text/markdown"
    return "text/plain"
