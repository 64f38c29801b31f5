"""The retrieval benchmark: its metrics on a hand-computed example, and a run
end to end on a tiny corpus the test writes (tests never read ../shared)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench.retrieval import evaluate, ndcg_at, recall_at

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


def test_the_benchmark_runs_end_to_end(tmp_path, postgres_server_url):
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
    ]
    (tmp_path / "corpus.jsonl").write_text(
        "\n".join(json.dumps({"_id": i, "title": t, "text": x}) for i, t, x in documents)
    )
    (tmp_path / "queries.jsonl").write_text(
        "\n".join(json.dumps({"_id": i, "text": x}) for i, x in queries)
    )
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.retrieval",
            "--corpus",
            str(tmp_path / "corpus.jsonl"),
            "--queries",
            str(tmp_path / "queries.jsonl"),
            "--qrels",
            str(tmp_path / "qrels.tsv"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={
            "PATH": "/usr/bin:/bin",
            "BENCH_DATABASE_URL": postgres_server_url,
        },
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert set(report) == {"bm25", "vector", "keyword", "hybrid"}
    for figures in report.values():
        assert set(figures) == {"ndcg@10", "recall@10", "recall@100", "qps", "p50_ms"}
    assert report["vector"]["recall@10"] == 1.0 and report["hybrid"]["ndcg@10"] > 0.5
