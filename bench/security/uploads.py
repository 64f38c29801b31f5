"""Hostile uploads: to the knowledge base (zip bombs dressed as DOCX, PDFs
that cost far more to read than their size, broken, encrypted and polyglot
files, oversized files and form fields) and as visitor attachments.

Each must be refused at upload with the standard error, or accepted and then
fail with a readable reason, keeping no chunks; legitimate files next to them
must still be processed. Memory must stay bounded: the hub runs in this
process, so its peak resident size is measured around the processing, and
Python allocations (tracemalloc) around the upload of an endless form field.
"""

from __future__ import annotations

import asyncio
import resource
import time
import tracemalloc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp

from bench.security import bombs
from bench.security.target import Result, Target
from bench.security.tenants import Tenant, build_tenant, expect

MB = 1 << 20
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@asynccontextmanager
async def environment(bounded: bool = True) -> AsyncIterator[dict[str, Any]]:
    # Smaller limits keep the bounded run quick; the bombs scale with them.
    yield ({"knowledge_max_upload_bytes": 4 * MB, "max_upload_bytes": 1 * MB} if bounded else {})


@dataclass
class Case:
    name: str
    filename: str
    data: bytes
    outcome: str  # "refused" (at upload), "failed" (in processing) or "processed"
    reason: str = ""  # what the error must say
    kind: str | None = None  # the type it must be recognised as


def knowledge_cases(limit: int, scale: int) -> list[Case]:
    """`scale`: how far bombs inflate, in bytes."""
    return [
        Case(
            "a small DOCX (control)",
            "ok.docx",
            bombs.docx("Refunds take 5 days."),
            "processed",
            kind=DOCX,
        ),
        Case(
            "a small PDF (control)",
            "ok.pdf",
            bombs.pdf_text("Refunds take 5 days."),
            "processed",
            kind="application/pdf",
        ),
        Case("a DOCX zip bomb", "bomb.docx", bombs.docx_bomb(scale), "failed", "unpacks to"),
        Case(
            "a DOCX bomb whose zip lies about its size",
            "liar.docx",
            bombs.docx_lying_sizes(min(scale, 1024 * MB)),
            "failed",
            "damaged",
        ),
        Case(
            "a DOCX with exponential entities",
            "lol.docx",
            bombs.docx_entities(),
            "failed",
            "damaged",
        ),
        Case("a DOCX nested 100 000 deep", "deep.docx", bombs.docx_deep(), "failed", "damaged"),
        Case(
            "a DOCX carrying a zip bomb inside",
            "inner.docx",
            bombs.docx_with_a_zip_inside(scale // 4),
            "failed",
            "no text",
        ),
        Case(
            "pages sharing one huge drawing",
            "pages.pdf",
            bombs.pdf_pages_sharing_content(3 * limit // MB + 1, MB),
            "failed",
            "too costly",
        ),
        Case(
            "a PDF Flate bomb",
            "flate.pdf",
            bombs.pdf_flate_bomb(scale),
            "failed",
            "too costly",
        ),
        Case(
            "a PDF whose page tree loops",
            "loop.pdf",
            bombs.pdf_page_tree_loop(),
            "failed",
            "damaged",
        ),
        Case("a truncated PDF", "cut.pdf", bombs.pdf_truncated(), "failed", "damaged"),
        Case("a PDF of garbage", "junk.pdf", bombs.pdf_garbage(), "failed", "damaged"),
        Case(
            "an encrypted PDF",
            "locked.pdf",
            bombs.pdf_encrypted("Secret", "pw"),
            "failed",
            "encrypted",
        ),
        Case(
            "an encrypted PDF with an empty password",
            "empty-pw.pdf",
            bombs.pdf_encrypted("Secret", ""),
            "failed",
            "encrypted",
        ),
        Case(
            "a PDF named and typed as a DOCX",
            "report.docx",
            bombs.pdf_text("Inside a PDF"),
            "processed",
            kind="application/pdf",
        ),
        Case(
            "a PDF with a DOCX appended",
            "both.docx",
            bombs.pdf_zip_polyglot("Polyglot"),
            "processed",
            kind="application/pdf",
        ),
        Case(
            "a file over the limit", "big.txt", b"a" * (limit + 1), "refused", "PAYLOAD_TOO_LARGE"
        ),
        Case("an empty file", "empty.txt", b"", "refused", "VALIDATION_ERROR"),
        Case(
            "binary noise", "noise.bin", bytes(range(256)) * 64, "refused", "UNSUPPORTED_MEDIA_TYPE"
        ),
        Case(
            "a zip that is no DOCX",
            "archive.docx",
            _plain_zip(),
            "refused",
            "UNSUPPORTED_MEDIA_TYPE",
        ),
    ]


def _plain_zip() -> bytes:
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("notes.txt", "not a document")
    return out.getvalue()


async def upload(target: Target, tenant: Tenant, case: Case) -> Any:
    form = aiohttp.FormData()
    form.add_field("file", case.data, filename=case.filename, content_type=DOCX)
    form.add_field("title", case.name)
    return await target.request(
        "POST", "/api/knowledge-base/upload", data=form, headers=tenant.headers
    )


async def wait_done(target: Target, tenant: Tenant, document_id: str, within: float) -> dict:
    deadline = time.monotonic() + within
    while True:
        reply = await target.request(
            "GET", f"/api/knowledge-base/{document_id}", headers=tenant.headers
        )
        document = await expect(reply, 200, "read a document")
        if document["status"] in ("processed", "failed") or time.monotonic() > deadline:
            return document
        await asyncio.sleep(0.1)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def knowledge(target: Target, tenant: Tenant, result: Result, bounded: bool) -> None:
    limit = target.settings.knowledge_max_upload_bytes
    scale = (64 if bounded else 2048) * MB
    cases = knowledge_cases(limit, scale)
    before = peak_rss_mb()
    accepted: list[tuple[Case, str]] = []
    for case in cases:
        reply = await upload(target, tenant, case)
        result.count()
        if case.outcome == "refused":
            if not reply.is_error(reply.status, case.reason) or reply.status < 400:
                result.fail(
                    f"{case.name}: {reply.status} {reply.text[:200]} (expected {case.reason})"
                )
            continue
        if reply.status != 201:
            result.fail(f"{case.name}: refused at upload ({reply.status} {reply.text[:200]})")
            continue
        accepted.append((case, reply.json["id"]))
    for case, document_id in accepted:
        document = await wait_done(target, tenant, document_id, within=120)
        seen = f"{document['status']}: {document['error']}"
        if document["status"] not in ("processed", "failed"):
            result.fail(f"{case.name}: still {document['status']} after 120 s")
        elif document["status"] != case.outcome:
            result.fail(f"{case.name}: {seen} (expected {case.outcome})")
        elif case.outcome == "failed":
            if case.reason not in (document["error"] or ""):
                result.fail(
                    f"{case.name}: failed with {document['error']!r} (expected {case.reason!r})"
                )
            if document["chunk_count"] or document["chunks"]:
                result.fail(f"{case.name}: failed but kept {document['chunk_count']} chunks")
        if case.kind and document["content_type"] != case.kind:
            result.fail(f"{case.name}: read as {document['content_type']} (expected {case.kind})")
        result.note(f"{case.name} ({len(case.data):,} bytes): {seen}")
    grown = peak_rss_mb() - before
    # The bombs inflate to `scale`; reading any of them whole would show here.
    if grown > 256:
        result.fail(f"processing the uploads grew the hub's peak memory by {grown:.0f} MB")
    result.note(f"peak memory grew by {grown:.0f} MB while bombs of {scale // MB} MB were read")
    listed = await target.request("GET", "/api/knowledge-base", headers=tenant.headers)
    stored = {d["id"] for d in listed.json["documents"]} - {tenant.resources["document"].id}
    if stored != {document_id for _, document_id in accepted}:
        result.fail("refused uploads left documents behind (or accepted ones vanished)")


async def endless_field(target: Target, tenant: Tenant, result: Result, size: int) -> None:
    """A form field of `size` bytes where a title of 2000 characters is allowed."""
    boundary = "sweep-boundary"

    async def body() -> AsyncIterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="a.txt"\r\nContent-Type: text/plain\r\n\r\nsome text\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\n'
        ).encode()
        block = b"A" * MB
        for _ in range(size // MB):
            yield block
        yield f"\r\n--{boundary}--\r\n".encode()

    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        reply = await target.request(
            "POST",
            "/api/knowledge-base/upload",
            data=body(),
            headers={**tenant.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
    except aiohttp.ClientError as exc:  # the server may hang up on the rest
        reply = None
        result.note(f"an endless form field: the connection was closed ({exc})")
    finally:
        peak = tracemalloc.get_traced_memory()[1] / MB
        tracemalloc.stop()
    result.count()
    # aiohttp reads a form field to at most the body limit (1 MB), then 413.
    if reply is not None and not (reply.is_error(400) or reply.is_error(413)):
        result.fail(f"a {size // MB} MB title: {reply.status} {reply.text[:200]}")
    if peak > size / MB / 4:
        result.fail(f"a {size // MB} MB title: the hub held {peak:.0f} MB of it in memory")
    result.note(f"a {size // MB} MB title: refused, {peak:.1f} MB allocated at the peak")


async def attachments(target: Target, tenant: Tenant, result: Result) -> None:
    """Visitor uploads: typed by content, served so no browser runs them."""
    conversation = tenant.conversation
    headers = {**tenant.public, "X-Conversation-Token": conversation.extra["token"]}
    limit = target.settings.max_upload_bytes
    cases = [
        (
            "a GIF with HTML and a script after it",
            "cat.gif",
            bombs.gif_html_polyglot(),
            201,
            "image/gif",
        ),
        ("an HTML page", "page.html", b"<html><script>alert(1)</script></html>", 201, "text/plain"),
        (
            "an SVG with a script",
            "x.svg",
            b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
            201,
            "text/plain",
        ),
        (
            "a name that breaks headers",
            'a"; filename*=x.html\r\nX-Evil: 1.txt',
            b"text",
            201,
            "text/plain",
        ),
        ("a name climbing directories", "../../../etc/passwd", b"root:x:0:0", 201, "text/plain"),
        ("a file over the limit", "big.txt", b"a" * (limit + 1), 413, None),
        ("an empty file", "empty.txt", b"", 400, None),
        ("an executable", "setup.exe", b"MZ\x90\x00" + bytes(range(256)), 415, None),
    ]
    for name, filename, data, status, kind in cases:
        body, content_type = raw_multipart(filename, data)
        reply = await target.request(
            "POST",
            f"/public/conversations/{conversation.id}/attachments",
            raw=body,
            headers={**headers, "Content-Type": content_type},
        )
        result.count()
        if reply.status != status or (status >= 400 and not reply.is_error(status)):
            result.fail(
                f"attachment, {name}: {reply.status} {reply.text[:200]} (expected {status})"
            )
            continue
        if status != 201:
            continue
        stored = reply.json
        if stored["type"] != kind:
            result.fail(f"attachment, {name}: stored as {stored['type']} (expected {kind})")
        path = "/" + stored["url"].split("/", 3)[3]
        served = await target.request("GET", path)
        disposition = served.headers.get("Content-Disposition", "")
        safe = (
            served.status == 200
            and served.headers.get("Content-Type", "").split(";")[0] == kind
            and served.headers.get("X-Content-Type-Options") == "nosniff"
            and disposition.startswith("attachment;")
            and disposition.count('"') == 2
            and "\r" not in disposition
            and "/" not in stored["name"]
            and "X-Evil" not in served.headers
        )
        if not safe:
            result.fail(f"attachment, {name}: served as {served.status} {served.headers}")


def raw_multipart(filename: str, data: bytes) -> tuple[bytes, str]:
    """A one-file form as raw bytes: clients refuse to send hostile names."""
    boundary = "sweep-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{filename}"\r\nContent-Type: text/html\r\n\r\n'
    )
    body = head.encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


async def run(target: Target, bounded: bool = True) -> Result:
    result = Result("uploads")
    tenant = await build_tenant(target, "Uploader", settle=False)
    await knowledge(target, tenant, result, bounded)
    await endless_field(target, tenant, result, (32 if bounded else 512) * MB)
    await attachments(target, tenant, result)
    if not await target.healthy():
        result.fail("the hub is not healthy after the uploads")
    return result
