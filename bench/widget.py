"""What a site's visitor downloads for the chat, as the hub serves it.

    python -m bench.widget

The widget, the Socket.IO client it loads and its stylesheet: bytes on disk
and as the hub sends them gzipped (`http_api/assets.py`, the same function).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.report import emit, number, table
from http_api.assets import file_asset

ROOT = Path(__file__).resolve().parent.parent
FILES = ["static/widget.js", "static/vendor/socket.io.min.js", "static/widget.css"]


def sizes() -> list[tuple[str, int, int]]:
    found = []
    for name in FILES:
        served = file_asset(ROOT / name)
        found.append((name, len(served.body), len(served.gzipped or served.body)))
    return found


if __name__ == "__main__":
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args()
    files = sizes()
    raw, zipped = sum(f[1] for f in files), sum(f[2] for f in files)
    rows = [(f"`{name}`", number(size), number(small)) for name, size, small in files]
    rows.append(("all three", number(raw), f"{number(zipped)} ({zipped / 1024:.1f} KiB)"))
    emit("widget", table(["file", "bytes", "gzipped"], rows))
