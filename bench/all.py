"""Every table of docs/performance.md, measured again on this checkout.

    python -m bench.all                  # all of them, about 90 minutes on 2 cores
    python -m bench.all --only rest,turns
    python -m bench.all --list

Runs each benchmark with the command docs/performance.md shows, one after
another (two at once would share the cores and measure each other). Each
prints its tables between named markers (bench/report.py); every block
replaces the block of the same name in docs/performance.md, whole, so a row
the run did not produce is gone rather than left over from an older run.
The file is written after each benchmark, so a stop keeps what was measured.
Each table is signed with the commit it measured and the machine's load
average just before (a figure taken on a busy machine says so).

Retrieval reads SciFact from ../shared/data (`--data`); it is skipped, with a
message, where that is missing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.report import blocks, replace_blocks

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "performance.md"


@dataclass(frozen=True)
class Bench:
    name: str
    argv: list[str]
    needs: Path | None = None  # data the benchmark reads


def benches(data: Path) -> list[Bench]:
    scifact = data / "scifact"
    return [
        Bench("turns", ["bench.turns", "--turns", "300", "--conversations", "30"]),
        Bench(
            "realtime",
            [
                "bench.realtime",
                "--idle",
                "20000",
                "--storm",
                "4000",
                "--connections",
                "1000",
                "5000",
            ],
        ),  # fmt: skip
        Bench("widget", ["bench.widget"]),
        Bench("analytics", ["bench.analytics", "--conversations", "100000", "--repeat", "40"]),
        Bench(
            "knowledge",
            [
                "bench.knowledge",
                "--documents",
                "40",
                "--sizes",
                "10000",
                "100000",
                "--queries",
                "200",
            ],
        ),  # fmt: skip
        Bench(
            "retrieval",
            [
                "bench.retrieval",
                "--corpus",
                str(scifact / "corpus.jsonl"),
                "--queries",
                str(scifact / "queries-train.jsonl"),
                "--qrels",
                str(scifact / "qrels-train.tsv"),
                "--split",
                "heldout",
            ],  # fmt: skip
            needs=scifact,
        ),
        Bench("workflows", ["bench.workflows", "--events", "500", "--sequential", "100"]),
        Bench("voice", ["bench.voice"]),
        Bench("load", ["bench.load", "--sessions", "200", "--messages", "3", "--duration", "120"]),
        Bench(
            "fanout", ["bench.fanout", "--conversations", "20", "--rate", "1500", "--seconds", "10"]
        ),  # fmt: skip
        Bench("faults", ["bench.faults"]),
        Bench("fairness", ["bench.fairness"]),
        Bench("rest", ["bench.rest"]),
        Bench("soak", ["bench.soak", "--minutes", "30"]),
    ]


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    # The tables this command writes do not count as a change to the code measured.
    changed = git("status", "--porcelain", "--", ".", ":!docs/performance.md")
    return head + (" with uncommitted changes" if changed else "")


def run(bench: Bench) -> dict[str, str]:
    """Run one benchmark, its output passed through; its named blocks."""
    load = os.getloadavg()[0]
    started = time.monotonic()
    print(f"\n== {bench.name}: python -m {' '.join(bench.argv)}", flush=True)
    process = subprocess.Popen(
        [sys.executable, "-m", *bench.argv], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    output = []
    for line in process.stdout:
        sys.stdout.write(line)
        output.append(line)
    if process.wait() != 0:
        raise SystemExit(f"{bench.name} failed (exit {process.returncode}); the docs keep the rest")
    took = time.monotonic() - started
    signed = (
        f"\n<sub>`python -m bench.all` on {commit()}, {datetime.now(UTC):%Y-%m-%d};"
        f" load average {load:.2f} before the run, which took"
        f" {f'{took / 60:.0f} min' if took >= 120 else f'{took:.0f} s'}.</sub>\n"
    )
    found = blocks("".join(output))
    if not found:
        raise SystemExit(f"{bench.name} printed no table")
    return {name: body.rstrip("\n") + "\n" + signed for name, body in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", help="comma-separated names (see --list)")
    parser.add_argument("--list", action="store_true", help="the benchmarks and their commands")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    chosen = benches(args.data)
    if args.list:
        for bench in chosen:
            print(f"{bench.name:<10} python -m {' '.join(bench.argv)}")
        return
    if args.only:
        names = set(args.only.split(","))
        unknown = names - {b.name for b in chosen}
        if unknown:
            parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
        chosen = [b for b in chosen if b.name in names]
    for bench in chosen:
        if bench.needs is not None and not bench.needs.exists():
            print(f"\n== {bench.name}: skipped, {bench.needs} is missing", flush=True)
            continue
        found = run(bench)  # first: the file is read after, with any edit made meanwhile
        document, missing = replace_blocks(DOC.read_text(), found)
        if missing:
            raise SystemExit(f"docs/performance.md has no block for: {', '.join(missing)}")
        DOC.write_text(document)


if __name__ == "__main__":
    main()
