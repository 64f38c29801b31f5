"""From an uploaded file to sections of text that keep the file's structure:
page numbers for PDF, headings for DOCX, Markdown and HTML, table rows as
text. (The type was recognised from the content at upload:
hub.uploads.document_type.)

A file's size says little about what reading it costs: a 30 KB DOCX can
unpack to gigabytes, and a 7 KB PDF can draw one megabyte of text on
thousands of pages. So each read is held to a budget (the largest upload, in
bytes): a document yields at most that many characters of text, a DOCX may
unpack to at most 5 times it, and a PDF's pages may hold at most twice it in
drawing instructions. Over budget, the document fails with the reason.

Whatever the format, characters PostgreSQL text cannot hold (NUL; and an
unpaired surrogate, which no UTF-8 can carry) are removed from what was
read, and the document says so in its `notice`: one stray character is no
reason to refuse a document, nor to fail storing its passages.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from html.parser import HTMLParser

MB = 2**20


class ExtractError(Exception):
    """The file cannot be read; the message is shown to the user as the reason."""


@dataclass
class Section:
    text: str
    page: int | None = None
    heading: str | None = None


@dataclass
class Extracted:
    sections: list[Section]
    # What the reader should know of how the text was read, or None.
    notice: str | None = None


UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def storable(text: str) -> tuple[str, int]:
    """The text without the characters PostgreSQL text cannot hold, and how
    many there were."""
    return UNSTORABLE.subn("", text)


class Budget:
    """Characters of text still allowed, counted as they are taken."""

    def __init__(self, chars: int) -> None:
        self.limit = self.left = chars

    def take(self, text: str) -> str:
        self.left -= len(text)
        if self.left < 0:
            raise ExtractError(
                f"The document holds more than {self.limit:,} characters of text; "
                "split it into smaller documents."
            )
        return text


def extract(data: bytes, kind: str, budget: int) -> Extracted:
    chars = Budget(budget)
    if kind == "application/pdf":
        sections = _pdf(data, chars)
    elif kind.endswith("wordprocessingml.document"):
        sections = _docx(data, chars)
    elif kind == "text/html":
        sections = _html(data.decode("utf-8", errors="replace"))
    elif kind == "text/markdown":
        sections = _markdown(data.decode("utf-8", errors="replace"))
    else:
        sections = [Section(data.decode("utf-8", errors="replace"))]
    if kind in ("text/html", "text/markdown", "text/plain"):
        for section in sections:
            chars.take(section.text)
    removed = 0
    for section in sections:
        section.text, count = storable(section.text)
        removed += count
        if section.heading is not None:
            section.heading, count = storable(section.heading)
            section.heading = section.heading or None
            removed += count
    sections = [s for s in sections if s.text.strip()]
    if not sections:
        raise ExtractError("The file contains no text to learn from.")
    return Extracted(sections, _removed_notice(removed))


def _removed_notice(removed: int) -> str | None:
    if not removed:
        return None
    characters = "1 character" if removed == 1 else f"{removed:,} characters"
    return (
        f"Removed {characters} that cannot be stored as text (NUL or unpaired "
        "surrogates) from the extracted text."
    )


def _pdf(data: bytes, chars: Budget) -> list[Section]:
    from pypdf import PdfReader
    from pypdf.errors import LimitReachedError, PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise ExtractError("The PDF is encrypted; upload it without a password.")
        # Decoding is cheap and bounded per stream by pypdf; parsing the drawing
        # instructions for text is what costs. Count them all before parsing any.
        drawn, allowed = 0, 2 * chars.limit
        for page in reader.pages:
            contents = page.get_contents()
            drawn += len(contents.get_data()) if contents is not None else 0
            if drawn > allowed:
                raise ExtractError(
                    f"The PDF's pages hold more than {allowed // MB} MB of drawing "
                    "instructions; it is too costly to read."
                )
        return [
            Section(chars.take(page.extract_text() or ""), page=number)
            for number, page in enumerate(reader.pages, start=1)
        ]
    except ExtractError:
        raise
    except LimitReachedError:  # a stream inflating beyond pypdf's own bounds
        raise ExtractError(
            "The PDF holds a stream too large to unpack; it is too costly to read."
        ) from None
    except (PyPdfError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise ExtractError(f"The PDF is damaged and cannot be read ({exc}).") from None


W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
# One paragraph or table row this large is no document a person wrote.
MAX_BLOCK_ELEMENTS = 200_000


def _docx(data: bytes, chars: Budget) -> list[Section]:
    """Streamed from the zip and parsed as it goes (never a whole tree), so
    memory stays bounded by the largest paragraph or table row."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            read = ("word/document.xml", "word/styles.xml")
            unpacked = sum(i.file_size for i in archive.infolist() if i.filename in read)
            # zipfile never inflates past the sizes the directory declares.
            if unpacked > 5 * chars.limit:
                raise ExtractError(
                    f"The Word document unpacks to {unpacked // MB} MB of text and markup, "
                    f"more than the {5 * chars.limit // MB} MB allowed."
                )
            styles = _docx_styles(archive) if "word/styles.xml" in archive.namelist() else {}
            with archive.open("word/document.xml") as xml:
                return _docx_sections(xml, styles, chars)
    except ExtractError:
        raise
    except Exception as exc:  # zip, XML and I/O errors of a broken file alike
        raise ExtractError(f"The Word document is damaged and cannot be read ({exc}).") from None


def _xml_parser_options() -> dict:
    # No entities (no "billion laughs"), no network, lxml's depth and size limits.
    return {"resolve_entities": False, "no_network": True, "huge_tree": False}


def _docx_styles(archive: zipfile.ZipFile) -> dict[str, str]:
    """Paragraph style ids to their names ("Heading1" → "heading 1")."""
    from lxml import etree

    with archive.open("word/styles.xml") as xml:
        root = etree.parse(xml, etree.XMLParser(**_xml_parser_options())).getroot()
    return {
        style.get(f"{W}styleId"): style.find(f"{W}name").get(f"{W}val", "")
        for style in root.iter(f"{W}style")
        if style.find(f"{W}name") is not None
    }


def _docx_text(element) -> str:
    parts = []
    for node in element.iter(f"{W}t", f"{W}tab", f"{W}br", f"{W}cr"):
        if node.tag == f"{W}t":
            parts.append(node.text or "")
        else:
            parts.append("\t" if node.tag == f"{W}tab" else "\n")
    return "".join(parts)


def _docx_sections(xml, styles: dict[str, str], chars: Budget) -> list[Section]:
    from lxml import etree

    sections = [Section("")]
    body, pending = f"{W}body", 0
    for _, element in etree.iterparse(xml, events=("end",), **_xml_parser_options()):
        pending += 1
        if pending > MAX_BLOCK_ELEMENTS:
            raise ExtractError("A paragraph or table of the Word document is too large to read.")
        parent = element.getparent()
        if element.tag == f"{W}p" and parent is not None and parent.tag == body:
            text = chars.take(_docx_text(element).strip())
            style_id = element.find(f"{W}pPr/{W}pStyle")
            style = styles.get(style_id.get(f"{W}val")) if style_id is not None else None
            if (style or "").lower().startswith(("heading", "title")) and text:
                sections.append(Section("", heading=text))
            elif text:
                sections[-1].text += text + "\n"
        elif element.tag == f"{W}tr" and parent is not None and parent.getparent().tag == body:
            cells = [
                "\n".join(_docx_text(p) for p in cell.findall(f"{W}p")).strip()
                for cell in element.findall(f"{W}tc")
            ]
            sections[-1].text += chars.take(" | ".join(dict.fromkeys(cells))) + "\n"
        else:
            continue
        # Done with this block: let it and everything before it go.
        element.clear()
        while element.getprevious() is not None:
            del parent[0]
        pending = 0
    return sections


class _HtmlText(HTMLParser):
    SKIP = {"script", "style", "noscript", "template", "svg"}
    BLOCK = {"p", "div", "li", "br", "tr", "section", "article", "table", "ul", "ol"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections = [Section("")]
        self.skipping = 0
        self.heading: list[str] | None = None
        self.cells: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skipping += 1
        elif re.fullmatch(r"h[1-6]", tag):
            self.heading = []
        elif tag == "tr":
            self.cells = []
        elif tag in ("td", "th") and self.cells is not None:
            self.cells.append("")
        elif tag in self.BLOCK:
            self.sections[-1].text += "\n"

    def handle_endtag(self, tag):
        if tag in self.SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif re.fullmatch(r"h[1-6]", tag) and self.heading is not None:
            title = " ".join("".join(self.heading).split())
            self.sections.append(Section("", heading=title or None))
            self.heading = None
        elif tag == "tr" and self.cells is not None:
            self.sections[-1].text += " | ".join(c.strip() for c in self.cells) + "\n"
            self.cells = None

    def handle_data(self, data):
        if self.skipping:
            return
        if self.heading is not None:
            self.heading.append(data)
        elif self.cells:
            self.cells[-1] += data
        else:
            self.sections[-1].text += data


def _html(text: str) -> list[Section]:
    parser = _HtmlText()
    parser.feed(text)
    parser.close()
    for section in parser.sections:
        section.text = re.sub(r"[ \t]+", " ", re.sub(r"\n\s*\n+", "\n", section.text)).strip()
    return parser.sections


def _markdown(text: str) -> list[Section]:
    sections = [Section("")]
    for line in text.splitlines():
        match = re.match(r"^#{1,6}\s+(.*)$", line)
        if match:
            sections.append(Section("", heading=match.group(1).strip()))
        else:
            sections[-1].text += line + "\n"
    return sections
