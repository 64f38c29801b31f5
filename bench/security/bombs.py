"""Hostile files, made here rather than downloaded: zip bombs dressed as DOCX,
PDFs that cost far more to read than their size, broken and encrypted PDFs,
polyglots. Each builder streams what it compresses, so making a bomb that
inflates to gigabytes takes seconds and little memory."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
CONTENT_TYPES = (
    '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
    'content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-'
    'package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.wordprocessingml.document.main+xml"/></Types>'
)
RELS = (
    '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/'
    '2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/'
    'officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/>'
    "</Relationships>"
)
MB = 1 << 20


def _docx(document_xml_parts, *, extra: dict[str, bytes] | None = None, zip64=True) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        archive.writestr("_rels/.rels", RELS)
        with archive.open("word/document.xml", "w", force_zip64=zip64) as part:
            for piece in document_xml_parts:
                part.write(piece)
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return out.getvalue()


def docx(text: str) -> bytes:
    """A small, valid DOCX with one paragraph."""
    body = f'<w:document xmlns:w="{W}"><w:body><w:p><w:r><w:t>{text}</w:t></w:r></w:p>'
    return _docx([body.encode(), b"</w:body></w:document>"])


def docx_bomb(inflated: int, zip64: bool = True) -> bytes:
    """A DOCX whose document.xml inflates to `inflated` bytes of paragraphs
    (about a thousandth of that on disk)."""
    paragraph = b"<w:p><w:r><w:t>" + b"A" * 1000 + b"</w:t></w:r></w:p>"
    block = paragraph * (MB // len(paragraph))

    def parts():
        yield f'<w:document xmlns:w="{W}"><w:body>'.encode()
        for _ in range(max(1, inflated // len(block))):
            yield block
        yield b"</w:body></w:document>"

    return _docx(parts(), zip64=zip64)


def docx_lying_sizes(inflated: int, claimed: int = 1000) -> bytes:
    """A DOCX bomb whose zip headers claim document.xml is tiny (under 2 GB,
    so without ZIP64 fields)."""
    data = bytearray(docx_bomb(inflated, zip64=False))
    name = b"word/document.xml"
    for signature, size_at, name_at in ((b"PK\x01\x02", 24, 46), (b"PK\x03\x04", 22, 30)):
        at = data.find(signature)
        while at != -1:
            if data[at + name_at : at + name_at + len(name)] == name:
                struct.pack_into("<I", data, at + size_at, claimed)
            at = data.find(signature, at + 4)
    return bytes(data)


def docx_entities() -> bytes:
    """Billion laughs inside document.xml: entities that expand exponentially."""
    lol = ['<!ENTITY a0 "lololololololololol">'] + [
        f'<!ENTITY a{i} "{f"&a{i - 1};" * 10}">' for i in range(1, 10)
    ]
    xml = (
        f'<?xml version="1.0"?><!DOCTYPE w:document [{"".join(lol)}]>'
        f'<w:document xmlns:w="{W}"><w:body><w:p><w:r><w:t>&a9;</w:t></w:r></w:p>'
        "</w:body></w:document>"
    )
    return _docx([xml.encode()])


def docx_deep(depth: int = 100_000) -> bytes:
    """Elements nested far deeper than any document."""
    return _docx(
        [
            f'<w:document xmlns:w="{W}"><w:body>'.encode(),
            b"<w:p>" * depth,
            b"</w:p>" * depth,
            b"</w:body></w:document>",
        ]
    )


def docx_with_a_zip_inside(inflated: int) -> bytes:
    """A small DOCX carrying a zip bomb as an embedded part."""
    return _docx(
        [f'<w:document xmlns:w="{W}"><w:body><w:p/></w:body></w:document>'.encode()],
        extra={"word/embeddings/bomb.zip": docx_bomb(inflated)},
    )


def pdf(objects: list[bytes], root: int = 1) -> bytes:
    """A PDF of these objects (numbered from 1) with a correct xref table."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        root,
        xref,
    )
    return bytes(out)


def _flate(size: int, unit: bytes) -> bytes:
    """`size` bytes (rounded down to whole units) of `unit` repeated, deflated."""
    compressor = zlib.compressobj(9)
    chunk = unit * max(1, min(size, MB) // len(unit))
    out = [compressor.compress(chunk) for _ in range(max(1, size // len(chunk)))]
    return b"".join(out) + compressor.flush()


FONT = b"/Resources << /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >>"


def pdf_pages_sharing_content(pages: int, content_bytes: int) -> bytes:
    """`pages` pages that all draw one content stream of `content_bytes`
    (decoded): a few KB on disk, `pages × content_bytes` to read."""
    stream = _flate(content_bytes, b"BT /F1 12 Tf 72 700 Td (All work and no play) Tj ET\n")
    kids = b" ".join(b"%d 0 R" % (4 + i) for i in range(pages))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, pages),
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    objects += [
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R " + FONT + b" >>"
    ] * pages
    return pdf(objects)


def pdf_flate_bomb(inflated: int) -> bytes:
    """One page whose content stream inflates to `inflated` bytes of zeros."""
    stream = _flate(inflated, b"\x00" * 1024)
    return pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>",
            b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream)
            + stream
            + b"\nendstream",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R >>",
        ]
    )


def pdf_page_tree_loop() -> bytes:
    """A page tree whose node lists itself among its kids."""
    return pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [2 0 R 3 0 R] /Count 2 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
        ]
    )


def pdf_truncated(text: str = "Truncated") -> bytes:
    whole = pdf_text(text)
    return whole[: len(whole) // 2]


def pdf_text(text: str) -> bytes:
    content = b"BT /F1 12 Tf 72 700 Td (" + text.encode("latin-1") + b") Tj ET"
    return pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>",
            b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R "
            + FONT
            + b" >>",
        ]
    )


def pdf_garbage() -> bytes:
    return b"%PDF-1.7\n" + bytes(range(256)) * 64


def pdf_encrypted(text: str, password: str) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(io.BytesIO(pdf_text(text))).pages:
        writer.add_page(page)
    writer.encrypt(password)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def pdf_zip_polyglot(text: str) -> bytes:
    """A PDF with a DOCX appended: a PDF reader and an unzip tool each see their own."""
    return pdf_text(text) + docx("the zip half")


def gif_html_polyglot() -> bytes:
    """A valid GIF header followed by HTML with a script."""
    return b"GIF89a\x01\x00\x01\x00\x00\x00\x00;<html><script>alert(document.domain)</script>"
