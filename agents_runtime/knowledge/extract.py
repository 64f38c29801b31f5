"""From an uploaded file to sections of text that keep the file's structure:
page numbers for PDF, headings for DOCX, Markdown and HTML, table rows as
text. (The type was recognised from the content at upload:
hub.uploads.document_type.)"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from html.parser import HTMLParser


class ExtractError(Exception):
    """The file cannot be read; the message is shown to the user as the reason."""


@dataclass
class Section:
    text: str
    page: int | None = None
    heading: str | None = None


def extract(data: bytes, kind: str) -> list[Section]:
    if kind == "application/pdf":
        sections = _pdf(data)
    elif kind.endswith("wordprocessingml.document"):
        sections = _docx(data)
    elif kind == "text/html":
        sections = _html(data.decode("utf-8", errors="replace"))
    elif kind == "text/markdown":
        sections = _markdown(data.decode("utf-8", errors="replace"))
    else:
        sections = [Section(data.decode("utf-8", errors="replace"))]
    sections = [s for s in sections if s.text.strip()]
    if not sections:
        raise ExtractError("The file contains no text to learn from.")
    return sections


def _pdf(data: bytes) -> list[Section]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise ExtractError("The PDF is encrypted; upload it without a password.")
        return [
            Section(page.extract_text() or "", page=number)
            for number, page in enumerate(reader.pages, start=1)
        ]
    except ExtractError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise ExtractError(f"The PDF is damaged and cannot be read ({exc}).") from None


def _docx(data: bytes) -> list[Section]:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises many kinds for a broken file
        raise ExtractError(f"The Word document is damaged and cannot be read ({exc}).") from None
    sections = [Section("")]
    for block in document.element.body.iterchildren():
        tag = block.tag.rsplit("}", 1)[-1]
        if tag == "p":
            paragraph = Paragraph(block, document)
            style = (paragraph.style.name if paragraph.style is not None else "") or ""
            if style.lower().startswith(("heading", "title")) and paragraph.text.strip():
                sections.append(Section("", heading=paragraph.text.strip()))
            elif paragraph.text.strip():
                sections[-1].text += paragraph.text.strip() + "\n"
        elif tag == "tbl":
            for row in Table(block, document).rows:
                cells = [cell.text.strip() for cell in row.cells]
                sections[-1].text += " | ".join(dict.fromkeys(cells)) + "\n"
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
