"""Reading a hostile document costs bounded work and memory, and ends in a
readable reason (agents_runtime/knowledge/extract.py, "budget")."""

from __future__ import annotations

import pytest

from agents_runtime.knowledge.extract import ExtractError, extract
from bench.security import bombs
from hub.uploads import TEXT_SNIFF_BYTES, document_type
from tests.documents import make_docx, make_pdf

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PDF = "application/pdf"
BUDGET = 1 << 20  # as if the upload limit were 1 MB


@pytest.mark.parametrize(
    "data, kind, reason",
    [
        # 64 MB of paragraphs in a 150 KB file: refused from the zip directory alone.
        (bombs.docx_bomb(64 << 20), DOCX, r"unpacks to 6\d MB"),
        (bombs.docx_lying_sizes(8 << 20), DOCX, "damaged"),
        (bombs.docx_entities(), DOCX, "damaged"),
        (bombs.docx_deep(), DOCX, "damaged"),
        # 40 pages drawing one 100 KB stream: 4 MB to parse from a 6 KB file.
        (bombs.pdf_pages_sharing_content(40, 100 << 10), PDF, "drawing instructions"),
        (bombs.pdf_flate_bomb(100 << 20), PDF, "too large to unpack; it is too costly"),
        (bombs.pdf_page_tree_loop(), PDF, "damaged"),
        (bombs.pdf_truncated(), PDF, "damaged"),
        (bombs.pdf_garbage(), PDF, "damaged"),
        (bombs.pdf_encrypted("secret", ""), PDF, "encrypted"),
    ],
)
def test_hostile_documents_fail_with_a_reason(data, kind, reason):
    with pytest.raises(ExtractError, match=reason):
        extract(data, kind, BUDGET)


def test_text_beyond_the_budget_is_refused():
    many_words = make_docx([("paragraph", "word " * 1000)] * 300)  # 1.5 M characters
    with pytest.raises(ExtractError, match="more than 1,048,576 characters"):
        extract(many_words, DOCX, BUDGET)
    with pytest.raises(ExtractError, match="characters"):
        extract(b"a" * (BUDGET + 1), "text/plain", BUDGET)
    # Three pages of one 100 KB stream are within the budget and read in full.
    sections = extract(bombs.pdf_pages_sharing_content(3, 100 << 10), PDF, BUDGET).sections
    assert [s.page for s in sections] == [1, 2, 3]


def test_dense_markup_is_read_in_bounded_memory():
    """A million empty paragraphs (6 MB of markup, 10 KB on disk) are read as
    a stream, not a tree: the answer is that there is no text."""
    import resource

    dense = bombs._docx(
        [
            f'<w:document xmlns:w="{bombs.W}"><w:body>'.encode(),
            b"<w:p/>" * 1_000_000,
            b"</w:body></w:document>",
        ]
    )
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ExtractError, match="no text"):
        extract(dense, DOCX, 8 << 20)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 100, grown_mb  # a whole tree of a million elements is ~200 MB


def test_docx_structure_survives_streaming():
    data = make_docx(
        [
            ("heading", "Warranty"),
            ("paragraph", "Two years\ton parts."),
            ("table", [["Product", "Price"], ["Stove", "EUR 59"]]),
            ("heading", "Returns"),
            ("paragraph", "Thirty days."),
        ]
    )
    sections = extract(data, DOCX, BUDGET).sections
    assert [(s.heading, s.text) for s in sections] == [
        ("Warranty", "Two years\ton parts.\nProduct | Price\nStove | EUR 59\n"),
        ("Returns", "Thirty days.\n"),
    ]


@pytest.mark.parametrize(
    "data, kind",
    [
        (b"Hot soup\x00 is served at the hut.", "text/plain"),
        (b"# Hut\x00\n\nHot soup\x00 is served at the hut.", "text/markdown"),
        (b"<h1>Hut</h1><p>Hot soup\x00 is served at the hut.</p>", "text/html"),
        (make_pdf([["Hot soup\x00 is served at the hut."]]), PDF),
    ],
)
def test_nul_is_removed_from_extracted_text_and_said(data, kind):
    """PostgreSQL text cannot hold a NUL (DOCX cannot carry one: XML refuses it)."""
    extracted = extract(data, kind, BUDGET)
    assert "Hot soup is served at the hut." in extracted.sections[-1].text
    assert not any("\x00" in (s.text + (s.heading or "")) for s in extracted.sections)
    assert extracted.notice and "NUL" in extracted.notice
    assert extract(b"Hot soup is served.", "text/plain", BUDGET).notice is None


def test_text_type_is_told_from_a_prefix_cut_mid_character():
    straddling = b"a" * (TEXT_SNIFF_BYTES - 1) + "é".encode() + b" and more"
    assert document_type(straddling, "notes.txt") == "text/plain"
    three_bytes = b"a" * (TEXT_SNIFF_BYTES - 2) + "€".encode() + b" and more"
    assert document_type(three_bytes, "notes.txt") == "text/plain"
    # A genuinely invalid byte is still no text, wherever it is in the prefix...
    assert document_type(b"a" * 100 + b"\xff" + b"a" * 100, "notes.txt") is None
    # ...and a file that ends mid-character is cut, not text.
    assert document_type(b"a" * 100 + "é".encode()[:1], "notes.txt") is None
