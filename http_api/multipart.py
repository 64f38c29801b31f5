"""Reading a multipart/form-data body: the one way both uploads (knowledge
documents, visitor attachments) open one."""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import AsyncIterator

from aiohttp import MultipartReader, web
from aiohttp.http_exceptions import BadHttpMessage

from hub.errors import ApiError

# What aiohttp's multipart parser raises for a body that breaks the format
# (a NUL or another forbidden byte in a part's headers, a wrong boundary, an
# unknown or broken content encoding): the client's mistake, not ours.
_MALFORMED = (BadHttpMessage, ValueError, RuntimeError, TypeError, zlib.error)


@contextlib.asynccontextmanager
async def form(request: web.Request, what: str) -> AsyncIterator[MultipartReader]:
    """The body's reader, for the block that reads it: 415 when the body is not
    multipart (`what`: the thing uploaded, for the message), 400 naming
    `body` when the block meets a malformed one."""
    if not request.content_type.startswith("multipart/"):
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", f"Send the {what} as multipart/form-data")
    try:
        yield await request.multipart()
    except _MALFORMED:
        raise ApiError.validation({"body": "not valid multipart/form-data"}) from None
