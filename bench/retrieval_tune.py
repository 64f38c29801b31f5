"""Choosing retrieval settings on the `tune` claims only, fast.

    python -m bench.retrieval_tune --corpus C --queries Q --qrels R
                                   [--chunks 400:60:1,128:32:1] [--limit N]

A full `bench.retrieval` run ingests the corpus through the hub (minutes);
settings are compared here with the product's own pieces, without the hub
around them: its extraction and chunker (`size:overlap:heading` per chunk
configuration), its embedder (vectors cached in /tmp per configuration),
PostgreSQL's `english` analysis for the lexemes (the expression of the
`chunks.tsv` column), its `KeywordIndex` (BM25) and its `fusion.combine`
(method `combine`, what hybrid search serves). Vector search is exact inner
product, as the FAISS flat index does. For comparison, the fusions that
score a candidate relative to the query's other candidates (`rrf`,
`minmax`, `zscore`: not served, since their scores mean nothing from one
query to the next) are here too. Only the `tune` half
of the claims is ever read (`split_of`); the chosen settings are then
measured once on `heldout` with `bench.retrieval`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import math
from collections import defaultdict
from pathlib import Path

import asyncpg
import numpy as np

from agents_runtime.knowledge import fusion
from agents_runtime.knowledge.bm25 import KeywordIndex, parse_tsvector
from agents_runtime.knowledge.embeddings import LocalEmbedder, chunk
from agents_runtime.knowledge.extract import extract
from bench.common import server_url
from bench.retrieval import bm25_rankings, evaluate, load

CACHE = Path("/tmp/syntera-retrieval-tune")


class Unbounded:
    """The embedder as the chunker sees it, with no window: chunks as large as
    asked, the text past the model's window unread (the chunker before)."""

    def __init__(self, embedder) -> None:
        self.embedder, self.window = embedder, 10**9

    def count_tokens(self, texts):
        return self.embedder.count_tokens(texts)


async def lexemes(conn: asyncpg.Connection, texts: list[str], analysis: str = "english") -> list:
    rows = await conn.fetch(
        "SELECT to_tsvector($2::regconfig, t)::text AS v FROM unnest($1::text[]) WITH ORDINALITY"
        " AS x(t, n) ORDER BY n",
        texts,
        analysis,
    )
    return [parse_tsvector(r["v"]) for r in rows]


def chunk_corpus(documents, embedder, size: int, overlap: int, heading: bool, bounded: bool):
    embedder = embedder if bounded else Unbounded(embedder)
    owners, pieces = [], []
    for d in documents:
        sections = extract(
            f"# {d['title']}\n\n{d['text']}".encode(), "text/markdown", 10**7
        ).sections
        for piece in chunk(sections, embedder, size, overlap, heading):
            owners.append(d["_id"])
            pieces.append(piece)
    return owners, pieces


def embed(embedder, texts: list[str], key: str) -> np.ndarray:
    path = CACHE / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.npy"
    if path.exists():
        return np.load(path)
    # Batches of similar lengths: little padding, same vectors, faster.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    vectors = np.zeros((len(texts), embedder.dimension), dtype=np.float32)
    for start in range(0, len(order), 32):
        batch = order[start : start + 32]
        vectors[batch] = embedder.embed([texts[i] for i in batch])
    CACHE.mkdir(exist_ok=True)
    np.save(path, vectors)
    return vectors


def relative_fusion(vector, keyword, method: str, weight: float, rrf_k: int = 60):
    """(vector id, fused score), best first, by a fusion that reads each
    side's scores relative to its own candidates; ties keep the vector
    side's order."""
    sides = []
    for hits in (vector, keyword):
        values = [s for _, s in hits]
        if method == "rrf":
            scores = {i: 1 / (rrf_k + rank) for rank, (i, _) in enumerate(hits, 1)}
            missing = 0.0
        elif method == "minmax":
            low, high = (min(values), max(values)) if values else (0.0, 1.0)
            scores = {i: (s - low) / (high - low or 1.0) for i, s in hits}
            missing = 0.0
        else:  # zscore: a candidate a side did not return gets its weakest
            mean = math.fsum(values) / len(values) if values else 0.0
            spread = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) or 1))
            scores = {i: (s - mean) / (spread or 1.0) for i, s in hits}
            missing = min(scores.values(), default=0.0)
        sides.append((scores, missing))
    (v_scores, v_missing), (k_scores, k_missing) = sides
    order = {i: n for n, (i, _) in enumerate(vector)}
    for i, _ in keyword:
        order.setdefault(i, len(order))
    fused = [
        (i, weight * v_scores.get(i, v_missing) + (1 - weight) * k_scores.get(i, k_missing))
        for i in order
    ]
    return sorted(fused, key=lambda pair: (-pair[1], order[pair[0]]))


def combined(vector, keyword, cosines, index, terms, weight: float):
    """What hybrid search serves (CompanyIndex.hybrid_search): both sides'
    candidates, each scored exactly on both sides, then fusion.combine."""
    candidates = [i for i, _ in vector] + [i for i, _ in keyword if i not in dict(vector)]
    vector_scores = {i: min(max(float(cosines[i]), 0.0), 1.0) for i in candidates}
    found = dict(keyword)
    keyword_scores = {i: found[i] if i in found else index.score(i, terms) for i in candidates}
    keyword_side = keyword_scores if terms else None
    return fusion.combine(candidates, vector_scores, keyword_side, weight=weight)


def to_documents(hits, owners, k: int = 100) -> list[str]:
    """A document's score is its best chunk's: its first appearance."""
    ranking: list[str] = []
    for vector_id, _ in hits:
        owner = owners[vector_id]
        if owner not in ranking:
            ranking.append(owner)
            if len(ranking) == k:
                break
    return ranking


async def main(args) -> None:
    documents, questions, qrels = load(
        Path(args.corpus), Path(args.queries), Path(args.qrels), args.limit, "tune"
    )
    print(f"{len(documents)} documents, {len(questions)} tune queries")
    embedder = LocalEmbedder()
    conn = await asyncpg.connect(server_url())
    query_terms = await lexemes(conn, [q["text"] for q in questions])
    query_vectors = embedder.embed([q["text"] for q in questions])
    anchor, _ = bm25_rankings(documents, questions)
    print(f"anchor: rank-bm25 over whole documents {evaluate(anchor, qrels)}")
    for config in args.chunks.split(","):
        size, overlap, heading, *unbounded = config.split(":")
        size, overlap, heading = int(size), int(overlap), int(heading)
        owners, pieces = chunk_corpus(
            documents, embedder, size, overlap, bool(heading), bounded=not unbounded
        )
        texts = [p.embedding_text(bool(heading)) for p in pieces]
        corpus_key = hashlib.sha256("".join(d["_id"] for d in documents).encode()).hexdigest()
        vectors = embed(embedder, texts, f"{config}:{corpus_key}:{embedder.name}")
        indexed = [f"{p.heading or ''} {p.content}" for p in pieces]  # as chunks.tsv is made
        terms = await lexemes(conn, indexed)
        print(f"\n== chunks {config} heading={bool(heading)}: {len(pieces)} chunks")
        vector_hits, cosines = [], []
        for qv in query_vectors:
            scores = vectors @ qv
            top = np.argsort(-scores)[: args.depth]
            vector_hits.append([(int(i), min(max(float(scores[i]), 0.0), 1.0)) for i in top])
            cosines.append(scores)
        vector_runs = {
            q["_id"]: to_documents(h, owners) for q, h in zip(questions, vector_hits, strict=True)
        }
        print(f"vector                        {evaluate(vector_runs, qrels)}")
        if args.simple:  # the same BM25 without stemming or stop words
            plain = await lexemes(conn, indexed, "simple")
            plain_queries = await lexemes(conn, [q["text"] for q in questions], "simple")
            index = KeywordIndex()
            for i, t in enumerate(plain):
                index.add(i, t, None)
            hits = [index.search(t, args.depth) for t in plain_queries]
            runs = {q["_id"]: to_documents(h, owners) for q, h in zip(questions, hits, strict=True)}
            print(f"bm25 'simple' analysis       {evaluate(runs, qrels)}")
        keyword_by_params, keyword_ndcg, indexes = {}, {}, {}
        for k1, b in itertools.product(args.k1, args.b):
            index = indexes[(k1, b)] = KeywordIndex(k1, b)
            for i, t in enumerate(terms):
                index.add(i, t, None)
            hits = [index.search(t, args.depth) for t in query_terms]
            keyword_by_params[(k1, b)] = hits
            runs = {q["_id"]: to_documents(h, owners) for q, h in zip(questions, hits, strict=True)}
            figures = evaluate(runs, qrels)
            keyword_ndcg[(k1, b)] = figures["ndcg@10"]
            print(f"bm25 k1={k1} b={b}          {figures}")
        # Fusion is tried with the default BM25 parameters and the best ones.
        fused_params = {(args.k1[0], args.b[0]), max(keyword_ndcg, key=keyword_ndcg.get)}
        results = defaultdict(dict)
        for k1, b in sorted(fused_params):
            keyword_hits = keyword_by_params[(k1, b)]
            for depth in args.depths:
                for method in args.methods:
                    for weight in args.weights:
                        runs = {}
                        for n, (q, v, kw) in enumerate(
                            zip(questions, vector_hits, keyword_hits, strict=True)
                        ):
                            if method == "combine":
                                index = indexes[(k1, b)]
                                fused = combined(
                                    v[:depth], kw[:depth], cosines[n], index, query_terms[n], weight
                                )
                            else:
                                fused = relative_fusion(v[:depth], kw[:depth], method, weight)
                            runs[q["_id"]] = to_documents(fused, owners)
                        figures = evaluate(runs, qrels)
                        results[(k1, b, depth, method)][weight] = figures["ndcg@10"]
        for (k1, b, depth, method), by_weight in sorted(results.items()):
            line = " ".join(f"{w}:{n:.4f}" for w, n in by_weight.items())
            print(f"hybrid k1={k1} b={b} depth={depth} {method:<10} nDCG@10 by weight {line}")
        best = max(
            ((n, key, w) for key, by_weight in results.items() for w, n in by_weight.items()),
            key=lambda t: t[0],
        )
        print(f"best hybrid: nDCG@10 {best[0]:.4f}, (k1, b, depth, method)={best[1]}, w={best[2]}")
    await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--queries", required=True)
    parser.add_argument("--qrels", required=True)
    parser.add_argument("--chunks", default="400:60:1", help="size:overlap:heading,...")
    parser.add_argument("--k1", type=float, nargs="+", default=[0.9])
    parser.add_argument("--b", type=float, nargs="+", default=[0.4])
    parser.add_argument("--depths", type=int, nargs="+", default=[100])
    parser.add_argument("--weights", type=float, nargs="+", default=[0.3, 0.4, 0.5, 0.6, 0.7])
    parser.add_argument("--depth", type=int, default=400, help="candidates kept per side")
    parser.add_argument(
        "--methods", nargs="+", default=["combine"], help="combine (served), rrf, minmax, zscore"
    )
    parser.add_argument("--simple", action="store_true", help="also BM25 on 'simple' lexemes")
    parser.add_argument("--limit", type=int, default=None)
    asyncio.run(main(parser.parse_args()))
