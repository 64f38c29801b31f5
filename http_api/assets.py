"""Pages and static files as they go over the wire: the type with its charset,
gzip when the client takes it, a strong ETag with 304 on If-None-Match, and
a cache policy that lets a release reach visitors.

Every file is fetched at a fixed, unversioned address (sites embed
`/widget.js` by that URL), so caches keep a copy but ask whether it is still
current before using it: a new release shows on the next page view, and
an unchanged file costs a bodiless 304. Each body is compressed once per
content (a file: per modification time and size), never per request.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from aiohttp import web

CACHE_CONTROL = "no-cache"
# Types whose standard or guess matters here (Python 3.11 guesses .js as
# application/javascript; RFC 9239 says text/javascript).
_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".json": "application/json",
    ".txt": "text/plain",
    ".svg": "image/svg+xml",
}
_COMPRESSIBLE = ("text/", "application/json", "image/svg+xml")


@dataclass(frozen=True)
class Asset:
    content_type: str  # with `charset=utf-8` for text: a host page's encoding never applies
    body: bytes
    gzipped: bytes | None  # None when gzip would not make it smaller
    etag: str  # of `body`; the gzipped body's is derived from it

    @property
    def gzip_etag(self) -> str:
        # Another representation, so another strong validator (RFC 9110 8.8.3).
        return self.etag[:-1] + '-gzip"'


def media_type(path: Path) -> str:
    return (
        _TYPES.get(path.suffix.lower())
        or mimetypes.guess_type(path.name)[0]
        or "application/octet-stream"
    )


@lru_cache(maxsize=64)
def asset(body: bytes, media: str) -> Asset:
    """The wire form of a body (cached: a page rendered the same way again
    is not compressed again)."""
    content_type = f"{media}; charset=utf-8" if media.startswith("text/") else media
    gzipped = None
    if media.startswith(_COMPRESSIBLE):
        packed = gzip.compress(body, compresslevel=9, mtime=0)
        gzipped = packed if len(packed) < len(body) else None
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return Asset(content_type, body, gzipped, etag)


_files: dict[Path, tuple[tuple[int, int], Asset]] = {}


def file_asset(path: Path) -> Asset:
    """A file's wire form, made again only when the file changes."""
    stat = path.stat()
    version = (stat.st_mtime_ns, stat.st_size)
    cached = _files.get(path)
    if cached is None or cached[0] != version:
        cached = (version, asset(path.read_bytes(), media_type(path)))
        _files[path] = cached
    return cached[1]


def _accepts_gzip(header: str) -> bool:
    for part in header.split(","):
        coding, *params = [p.strip().lower() for p in part.split(";")]
        if coding in ("gzip", "x-gzip", "*"):
            for param in params:
                if param.startswith("q="):  # q=0: "not gzip, please"
                    try:
                        return float(param[2:]) > 0
                    except ValueError:
                        return False
            return True
    return False


def _matches(if_none_match: str, etag: str) -> bool:
    """If-None-Match compares weakly (RFC 9110 13.1.2)."""
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


def respond(
    request: web.Request, wire: Asset, headers: dict[str, str] | None = None
) -> web.Response:
    """`wire` as this request should get it: gzipped if it takes gzip, 304 if
    it already holds it. `headers`: the route's own (CSP, CORS)."""
    zipped = wire.gzipped is not None and _accepts_gzip(request.headers.get("Accept-Encoding", ""))
    etag = wire.gzip_etag if zipped else wire.etag
    common = {"ETag": etag, "Cache-Control": CACHE_CONTROL, "Vary": "Accept-Encoding"}
    common.update(headers or {})
    if _matches(request.headers.get("If-None-Match", ""), etag):
        return web.Response(status=304, headers=common)
    common["Content-Type"] = wire.content_type
    if zipped:
        common["Content-Encoding"] = "gzip"
    return web.Response(body=wire.gzipped if zipped else wire.body, headers=common)
