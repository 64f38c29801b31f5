"""The retrieval benchmark: its metrics on a hand-computed example, and a run
end to end on a tiny corpus the test writes (tests never read ../shared)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench.retrieval import evaluate, load, ndcg_at, recall_at, split_of

ROOT = Path(__file__).resolve().parent.parent


def test_metrics_on_a_hand_computed_example():
    relevant = {"a": 1, "c": 1}
    ranking = ["b", "a", "d", "c"]
    # DCG = 1/log2(3) + 1/log2(5); ideal = 1/log2(2) + 1/log2(3)
    expected = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert ndcg_at(ranking, relevant, 10) == pytest.approx(expected)
    assert ndcg_at(["a", "c"], relevant, 10) == pytest.approx(1.0)
    assert ndcg_at(["x", "y"], relevant, 10) == 0
    assert recall_at(ranking, relevant, 2) == 0.5 and recall_at(ranking, relevant, 10) == 1.0
    report = evaluate({"q1": ranking, "q2": ["z"]}, {"q1": relevant, "q2": {"z": 1}})
    assert report["ndcg@10"] == pytest.approx(round((expected + 1) / 2, 4))
    assert report["recall@10"] == 1.0


def write_corpus(folder: Path) -> list[str]:
    """Four documents, two judged claims (q1 falls in `heldout`, q2 in `tune`)."""
    documents = [
        (
            "d1",
            "Vitamin D and bone density",
            "Vitamin D supplements raise bone mineral density in older adults.",
        ),
        ("d2", "Sleep and memory", "Deep sleep consolidates memories formed during the day."),
        (
            "d3",
            "Coffee and the heart",
            "Moderate coffee drinking does not raise the risk of heart disease.",
        ),
        ("d4", "Exercise and mood", "Regular aerobic exercise lowers symptoms of depression."),
    ]
    queries = [
        ("q1", "Supplementing vitamin D strengthens bones."),
        ("q2", "Sleeping well helps you remember."),
        ("q3", "A claim nobody judged."),
    ]
    (folder / "corpus.jsonl").write_text(
        "\n".join(json.dumps({"_id": i, "title": t, "text": x}) for i, t, x in documents)
    )
    (folder / "queries.jsonl").write_text(
        "\n".join(json.dumps({"_id": i, "text": x}) for i, x in queries)
    )
    (folder / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n")
    return [str(folder / name) for name in ("corpus.jsonl", "queries.jsonl", "qrels.tsv")]


def bench(paths: list[str], *options: str, database: str = "") -> subprocess.CompletedProcess:
    corpus, queries, qrels = paths
    return subprocess.run(
        [sys.executable, "-m", "bench.retrieval", "--corpus", corpus, "--queries", queries]
        + ["--qrels", qrels, *options],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "BENCH_DATABASE_URL": database},
    )


def test_the_split_is_fixed_by_the_id_and_even(tmp_path):
    # Fixed forever by a hash of the id: the held-out claims never move.
    assert [split_of(q) for q in ("q1", "q2", "q3", "q4", "1", "2")] == [
        "heldout",
        "tune",
        "tune",
        "heldout",
        "heldout",
        "tune",
    ]
    tune = sum(split_of(str(i)) == "tune" for i in range(2000))
    assert 900 < tune < 1100
    paths = [Path(p) for p in write_corpus(tmp_path)]

    def claims(split: str) -> list[str]:
        return [q["_id"] for q in load(*paths, limit=None, split=split)[1]]

    # Only judged claims count; each split holds its own.
    assert claims("all") == ["q1", "q2"]
    assert claims("heldout") == ["q1"] and claims("tune") == ["q2"]


def test_an_empty_split_is_refused(tmp_path):
    paths = write_corpus(tmp_path)
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    run = bench(paths, "--split", "tune")
    assert run.returncode != 0 and "no judged queries in the 'tune' split" in run.stderr


def test_the_benchmark_runs_end_to_end(tmp_path, postgres_server_url):
    run = bench(write_corpus(tmp_path), "--split", "all", database=postgres_server_url)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "4 documents, 2 queries (all)" in run.stdout
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert set(report) == {"bm25", "vector", "keyword", "hybrid"}
    for figures in report.values():
        assert set(figures) == {"ndcg@10", "recall@10", "recall@100", "qps", "p50_ms"}
    assert report["vector"]["recall@10"] == 1.0 and report["hybrid"]["ndcg@10"] > 0.5
    assert report["keyword"]["recall@10"] == 1.0  # BM25 finds both from their words
