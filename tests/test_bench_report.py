"""bench/report.py: the blocks `python -m bench.all` puts into docs/performance.md."""

from bench.report import block, blocks, number, replace_blocks, table

DOC = """# Performance

<!-- bench:turns -->
| figure | value |
|---|---|
| old row that the new run does not have | 1 ms |
<!-- /bench:turns -->

Prose between tables stays.

<!-- bench:rest -->
| endpoint | req/s |
|---|---|
| old | 1 |
<!-- /bench:rest -->
"""


def test_a_block_is_replaced_whole_and_the_rest_is_kept():
    output = "noise\n" + block("turns", table(["figure", "value"], [("p50", "3 ms")])) + "more\n"
    found = blocks(output)
    assert list(found) == ["turns"]
    document, missing = replace_blocks(DOC, found)
    assert missing == []
    assert "old row" not in document
    assert "| p50 | 3 ms |" in document
    assert "Prose between tables stays." in document
    assert "| old | 1 |" in document  # a block the run did not print is left alone
    assert document.count("<!-- bench:turns -->") == 1


def test_a_block_the_document_lacks_is_reported():
    _, missing = replace_blocks(DOC, {"soak": "| a |\n"})
    assert missing == ["soak"]


def test_numbers_are_written_as_the_docs_write_them():
    assert number(15095) == "15 095"
    assert number(1234.56) == "1 234.6"
