"""Retrieval quality on a BEIR-layout dataset, through the product's own path.

    python -m bench.retrieval --corpus C --queries Q --qrels R [--modes vector,keyword,hybrid]
                              [--split tune|heldout|all] [--limit N]

Every document goes in as an upload does (stored, extracted, chunked,
embedded with the configured embedder, indexed); every query goes through the
knowledge base's own search function. A document's score is its best chunk's.
Per mode it prints nDCG@10, Recall@10, Recall@100 (BEIR's definitions),
queries per second and p50 latency, next to a plain BM25 baseline over whole
documents (rank-bm25, Snowball stemming, k1 0.9, b 0.4). The last line is one
JSON object keyed by mode.

No tuning on the figures that count: the judged claims are split for good by
a hash of their ids (`split_of`) into `tune` (choose settings on these,
`bench.retrieval_tune` sees nothing else) and `heldout` (measure the chosen
settings once). See docs/retrieval.md.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import json
import math
import re
import statistics
import time
import uuid
from collections import defaultdict
from pathlib import Path

from bench.common import hub_client, scratch_database
from bench.report import emit, table
from hub.services import SERVICES
from hub.store import knowledge as store

SPLITS = ("tune", "heldout", "all")


def split_of(query_id: str) -> str:
    """`tune` or `heldout`, half and half, fixed by the id alone: no seed, no
    order, no file to keep in step."""
    return "tune" if hashlib.sha256(query_id.encode()).digest()[0] % 2 == 0 else "heldout"


def ndcg_at(ranking: list[str], relevant: dict[str, int], k: int) -> float:
    """nDCG@k with graded relevance, log2 discount (BEIR / trec_eval)."""
    dcg = sum((relevant.get(doc, 0)) / math.log2(rank + 2) for rank, doc in enumerate(ranking[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(grade / math.log2(rank + 2) for rank, grade in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranking: list[str], relevant: dict[str, int], k: int) -> float:
    wanted = {doc for doc, grade in relevant.items() if grade > 0}
    return len(wanted & set(ranking[:k])) / len(wanted) if wanted else 0.0


def evaluate(rankings: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    queries = [q for q in rankings if q in qrels]
    return {
        "ndcg@10": round(statistics.mean(ndcg_at(rankings[q], qrels[q], 10) for q in queries), 4),
        "recall@10": round(
            statistics.mean(recall_at(rankings[q], qrels[q], 10) for q in queries), 4
        ),
        "recall@100": round(
            statistics.mean(recall_at(rankings[q], qrels[q], 100) for q in queries), 4
        ),
    }


def load(corpus: Path, queries: Path, qrels: Path, limit: int | None, split: str = "all"):
    qrel: dict[str, dict[str, int]] = defaultdict(dict)
    with qrels.open() as f:
        for row in csv.DictReader(f, delimiter="\t"):
            qrel[row["query-id"]][row["corpus-id"]] = int(row["score"])
    questions = [json.loads(line) for line in queries.open() if line.strip()]
    questions = [q for q in questions if q["_id"] in qrel and split in ("all", split_of(q["_id"]))]
    if limit:
        questions = questions[:limit]
    documents = [json.loads(line) for line in corpus.open() if line.strip()]
    if limit:
        # A quick run keeps the judged documents and a share of the others.
        judged = {d for q in questions for d in qrel[q["_id"]]}
        documents = [d for i, d in enumerate(documents) if d["_id"] in judged or i < limit * 10]
    return documents, questions, qrel


_TOKEN = re.compile(r"[a-z0-9]+")


def bm25_rankings(documents, questions) -> tuple[dict[str, list[str]], list[float]]:
    import snowballstemmer
    from rank_bm25 import BM25Okapi

    stem = snowballstemmer.stemmer("english").stemWords

    def tokens(text: str) -> list[str]:
        return stem(_TOKEN.findall(text.lower()))

    bm25 = BM25Okapi([tokens(f"{d['title']} {d['text']}") for d in documents], k1=0.9, b=0.4)
    ids = [d["_id"] for d in documents]
    rankings, latencies = {}, []
    for q in questions:
        start = time.perf_counter()
        scores = bm25.get_scores(tokens(q["text"]))
        top = sorted(range(len(ids)), key=lambda i: -scores[i])[:100]
        latencies.append((time.perf_counter() - start) * 1000)
        rankings[q["_id"]] = [ids[i] for i in top]
    return rankings, latencies


async def product_rankings(url: str, documents, questions, modes: list[str]) -> dict:
    async with hub_client(url) as client:
        services = client.app[SERVICES]
        knowledge = services.knowledge
        signup = await client.post(
            "/api/auth/signup",
            json={
                "email": f"ret-{uuid.uuid4().hex[:6]}@example.com",
                "password": "bench password",
                "company_name": "Retrieval",
            },
        )
        company_id = uuid.UUID((await signup.json())["company"]["id"])
        start = time.perf_counter()
        async with services.db.tenant(company_id) as conn:
            for d in documents:
                # As an upload: the title as a heading over the abstract, the
                # corpus id as the file name, processed by the same pipeline.
                text = f"# {d['title']}\n\n{d['text']}".encode()
                await store.create_document(
                    conn,
                    company_id=company_id,
                    agent_id=None,
                    title=d["title"][:200],
                    description=None,
                    filename=d["_id"],
                    content_type="text/markdown",
                    data=text,
                )
        while True:
            knowledge.wake()
            async with services.db.tenant(company_id) as conn:
                left = await conn.fetchval(
                    "SELECT count(*) FROM documents WHERE status IN ('pending', 'processing')"
                )
            if not left:
                break
            await asyncio.sleep(0.5)
        ingest_seconds = time.perf_counter() - start
        async with services.db.tenant(company_id) as conn:
            chunks = await conn.fetchval("SELECT count(*) FROM chunks")
        results = {"ingest_seconds": round(ingest_seconds, 1), "chunks": chunks}
        for mode in modes:
            rankings, latencies = {}, []
            for q in questions:
                begin = time.perf_counter()
                hits = await knowledge.search(company_id, q["text"], limit=100, mode=mode)
                latencies.append((time.perf_counter() - begin) * 1000)
                ranking = []
                for hit in hits:  # a document's score is its best chunk's: its first hit
                    source = hit["metadata"]["source"]
                    if source not in ranking:
                        ranking.append(source)
                rankings[q["_id"]] = ranking
            results[mode] = (rankings, latencies)
        return results


async def main(args) -> dict:
    documents, questions, qrels = load(
        Path(args.corpus), Path(args.queries), Path(args.qrels), args.limit, args.split
    )
    if not questions:
        raise SystemExit(f"no judged queries in the {args.split!r} split")
    modes = [m for m in args.modes.split(",") if m]
    print(f"{len(documents)} documents, {len(questions)} queries ({args.split})")
    report = {}
    rankings, latencies = bm25_rankings(documents, questions)
    report["bm25"] = {
        **evaluate(rankings, qrels),
        "qps": round(1000 / statistics.mean(latencies), 1),
        "p50_ms": round(statistics.median(latencies), 2),
    }
    async with scratch_database("syntera_retrieval") as url:
        product = await product_rankings(url, documents, questions, modes)
    print(f"ingested {product['chunks']} chunks in {product['ingest_seconds']} s")
    for mode in modes:
        rankings, latencies = product[mode]
        report[mode] = {
            **evaluate(rankings, qrels),
            "qps": round(1000 / statistics.mean(latencies), 1),
            "p50_ms": round(statistics.median(latencies), 2),
        }
    names = {"bm25": "bm25 (anchor)", "keyword": "keyword (BM25 in the product)"}
    emit(
        "retrieval",
        table(
            ["mode", "nDCG@10", "Recall@10", "Recall@100", "qps", "p50"],
            [
                (
                    f"**{mode}**" if mode == "hybrid" else names.get(mode, mode),
                    f"**{f['ndcg@10']:.3f}**" if mode == "hybrid" else f"{f['ndcg@10']:.3f}",
                    f"{f['recall@10']:.3f}",
                    f"{f['recall@100']:.3f}",
                    f["qps"],
                    f"{f['p50_ms']:.1f} ms",
                )  # fmt: skip
                for mode, f in report.items()
            ],
        ),
    )
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--queries", required=True)
    parser.add_argument("--qrels", required=True)
    parser.add_argument("--modes", default="vector,keyword,hybrid")
    parser.add_argument(
        "--split", choices=SPLITS, default="all", help="which judged queries (docs/retrieval.md)"
    )
    parser.add_argument("--limit", type=int, default=None, help="a quick run: this many queries")
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
