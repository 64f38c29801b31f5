"""How a benchmark prints its result: markdown tables between markers.

Each benchmark prints the tables docs/performance.md shows, each wrapped in

    <!-- bench:NAME -->
    | ... |
    <!-- /bench:NAME -->

so that `python -m bench.all` can put the block in place of the one with the
same name in the docs. A table is replaced whole: a row that a run did not
measure is gone, not left behind from an older run.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Sequence

BLOCK = re.compile(r"<!-- bench:([\w.-]+) -->\n(.*?)<!-- /bench:\1 -->\n", re.DOTALL)


def number(value: float, digits: int = 1) -> str:
    """12 345.6: the way the docs write figures, a space between thousands."""
    text = f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"
    return text.replace(",", " ")


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def block(name: str, text: str) -> str:
    return f"<!-- bench:{name} -->\n{text.rstrip()}\n<!-- /bench:{name} -->\n"


def emit(name: str, text: str) -> None:
    """Print one named block (flushed: `bench.all` reads it as it comes)."""
    sys.stdout.write(block(name, text))
    sys.stdout.flush()


def blocks(output: str) -> dict[str, str]:
    """The named blocks in a benchmark's output (or in the docs)."""
    return {name: body for name, body in BLOCK.findall(output)}


def replace_blocks(document: str, found: dict[str, str]) -> tuple[str, list[str]]:
    """`document` with each of its blocks named in `found` replaced; and the
    names in `found` that the document has no block for."""
    missing = [name for name in found if f"<!-- bench:{name} -->" not in document]

    def swap(match: re.Match) -> str:
        name = match.group(1)
        return block(name, found[name]) if name in found else match.group(0)

    return BLOCK.sub(swap, document), missing
