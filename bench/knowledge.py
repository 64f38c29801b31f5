"""Knowledge base: ingestion throughput and search latency.

    python -m bench.knowledge [--documents 40] [--sizes 10000 100000] [--queries 200]

1. Ingestion through the real path (upload rows → extract → chunk → local
   MiniLM int8 embeddings → PostgreSQL), in the benchmark's event loop, with
   a probe measuring the longest stall of that loop meanwhile.
2. Search at 10k and 100k chunks: the chunks are inserted directly with
   clustered random vectors (embedding 100k real chunks takes ~10 minutes
   here), then queried through HTTP (`POST /api/knowledge-base/search`,
   vector mode: auth, RLS transactions, the query's embedding, FAISS, the
   chunk rows, JSON) next to the same index searched raw, and next to the
   raw embedding + FAISS work without HTTP or database.
3. Memory: the FAISS cache's bytes per 100k chunks, and the process's RSS.
4. Memory while ingesting, from outside (`--memory-sizes`, bytes of text;
   first, on a fresh `python -m hub serve`): each text uploaded through
   `POST /api/knowledge-base/upload`, the web process's RSS sampled every
   20 ms until the document is processed, then 3 s later; the figures are
   the peak and the after, each above the RSS just before the upload.

Prints markdown tables, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import psutil

from agents_runtime.knowledge.service import Knowledge
from bench.common import hub_client, percentile, scratch_database
from bench.report import emit, number, table
from hub.services import SERVICES
from hub.store import knowledge as store

ROOT = Path(__file__).resolve().parent.parent

WORDS = [
    "tent",
    "stove",
    "backpack",
    "refund",
    "warranty",
    "delivery",
    "order",
    "invoice",
    "mountain",
    "river",
    "trail",
    "sleeping",
    "bag",
    "waterproof",
    "jacket",
    "boots",
    "size",
    "exchange",
    "discount",
    "member",
    "shipping",
    "return",
    "battery",
    "lamp",
    "compass",
    "map",
    "rope",
    "helmet",
    "gloves",
    "season",
    "weather",
    "storm",
    "camp",
    "lake",
    "forest",
]


def paragraph(rng: random.Random, sentences: int) -> str:
    return " ".join(
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 18))).capitalize() + "."
        for _ in range(sentences)
    )


async def ingestion(url: str, documents: int) -> dict:
    rng = random.Random(3)
    async with hub_client(url) as client:
        services = client.app[SERVICES]
        knowledge: Knowledge = services.knowledge
        signup = await client.post(
            "/api/auth/signup",
            json={
                "email": f"kb-{uuid.uuid4().hex[:6]}@example.com",
                "password": "bench password",
                "company_name": "KB",
            },
        )
        company_id = uuid.UUID((await signup.json())["company"]["id"])
        async with services.db.tenant(company_id) as conn:
            for i in range(documents):
                text = "\n\n".join(paragraph(rng, 12) for _ in range(8)).encode()
                await store.create_document(
                    conn,
                    company_id=company_id,
                    agent_id=None,
                    title=f"Doc {i}",
                    description=None,
                    filename=f"doc{i}.txt",
                    content_type="text/plain",
                    data=text,
                )
        knowledge.embedder.embed(["warm up"])  # the model loads once, outside the timing
        stalls: list[float] = []
        done = asyncio.Event()

        async def probe() -> None:
            while not done.is_set():
                start = time.perf_counter()
                await asyncio.sleep(0.005)
                stalls.append((time.perf_counter() - start - 0.005) * 1000)

        # Processing runs in the app's own loop (embedded mode); we watch that loop.
        probe_task = asyncio.create_task(probe())
        start = time.perf_counter()
        while True:
            async with services.db.tenant(company_id) as conn:
                left = await conn.fetchval(
                    "SELECT count(*) FROM documents WHERE status IN ('pending', 'processing')"
                )
            if not left:
                break
            knowledge.wake()
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - start
        done.set()
        await probe_task
        async with services.db.tenant(company_id) as conn:
            chunks = await conn.fetchval("SELECT count(*) FROM chunks")
    return {
        "documents": documents,
        "chunks": chunks,
        "chunks_per_s": round(chunks / elapsed, 1),
        "max_loop_stall_ms": round(max(stalls), 1),
        "p99_loop_stall_ms": round(percentile(stalls, 99), 1),
    }


def clustered(n: int, dimension: int, rng: np.random.Generator) -> np.ndarray:
    centres = rng.normal(size=(200, dimension)).astype(np.float32)
    vectors = centres[rng.integers(0, 200, n)] + 0.35 * rng.normal(size=(n, dimension)).astype(
        np.float32
    )
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


async def search_latency(url: str, size: int, queries: int) -> dict:
    rng = np.random.default_rng(size)
    async with hub_client(url) as client:
        services = client.app[SERVICES]
        knowledge: Knowledge = services.knowledge
        embedder = knowledge.embedder
        signup = await client.post(
            "/api/auth/signup",
            json={
                "email": f"kbs-{uuid.uuid4().hex[:6]}@example.com",
                "password": "bench password",
                "company_name": "KB search",
            },
        )
        session = await signup.json()
        headers = {"Authorization": f"Bearer {session['access_token']}"}
        company_id = uuid.UUID(session["company"]["id"])
        vectors = clustered(size, embedder.dimension, rng)
        text_rng = random.Random(size)
        # COPY is refused under row-level security: set-up data goes in as the owner.
        async with services.db.system() as conn:
            document = await store.create_document(
                conn,
                company_id=company_id,
                agent_id=None,
                title="Synthetic",
                description=None,
                filename="synthetic.txt",
                content_type="text/plain",
                data=b"synthetic",
            )
            records = [
                (
                    company_id,
                    document["id"],
                    i,
                    paragraph(text_rng, 2),
                    40,
                    knowledge.embedding_key,
                    v.tolist(),
                )
                for i, v in enumerate(vectors)
            ]
            await conn.copy_records_to_table(
                "chunks",
                records=records,
                columns=[
                    "company_id",
                    "document_id",
                    "position",
                    "content",
                    "token_count",
                    "embedding_model",
                    "embedding",
                ],
            )
        process = psutil.Process()
        rss_before = process.memory_info().rss
        index = await knowledge._index(company_id)  # built once, as the first search would
        rss_after = process.memory_info().rss
        questions = [paragraph(text_rng, 1) for _ in range(queries)]

        async def api(question: str) -> None:
            response = await client.post(
                "/api/knowledge-base/search",
                headers=headers,
                json={"query": question, "mode": "vector", "limit": 5},
            )
            assert response.status == 200, await response.text()
            await response.read()

        for question in questions[:10]:
            await api(question)
        api_ms, raw_ms, embed_raw_ms = [], [], []
        for question in questions:
            start = time.perf_counter()
            await api(question)
            api_ms.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            query = embedder.embed([question])[0]
            embedded = time.perf_counter()
            index.search(query, 5, None)
            done = time.perf_counter()
            embed_raw_ms.append((done - start) * 1000)
            raw_ms.append((done - embedded) * 1000)
    return {
        "chunks": size,
        "index": index.kind,
        "api_p50_ms": round(statistics.median(api_ms), 2),
        "api_p99_ms": round(percentile(api_ms, 99), 2),
        "raw_faiss_p50_ms": round(statistics.median(raw_ms), 3),
        "raw_embed_and_faiss_p50_ms": round(statistics.median(embed_raw_ms), 2),
        "ratio_api_to_raw_embed_and_faiss": round(
            statistics.median(api_ms) / statistics.median(embed_raw_ms), 2
        ),
        "index_mb": round(index.nbytes / 2**20, 1),
        "rss_growth_mb": round((rss_after - rss_before) / 2**20, 1),
    }


async def _served_hub(url: str, port: int):
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "PORT": str(port),
        "LOG_LEVEL": "WARNING",
        "SYNTERA_DEMO": "0",
        "SYNTERA_DATA_DIR": "/tmp/syntera-bench-knowledge",
        "RATE_LIMIT_PER_HOUR": "10000000",  # the status is polled
    }
    for name in ("REDIS_URL", "OPENAI_API_KEY", "EMBEDDING_PROVIDER"):
        env.pop(name, None)
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hub",
        "serve",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
    )


async def ingestion_memory(url: str, sizes: list[int]) -> list[dict]:
    """RSS of a fresh `python -m hub serve` while each text ingests."""
    import aiohttp

    from bench.cluster import free_port
    from bench.realtime import wait_http

    port = free_port()
    hub = await _served_hub(url, port)
    process = psutil.Process(hub.pid)
    base = f"http://127.0.0.1:{port}"
    figures = []
    try:
        await wait_http(f"{base}/healthz")
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"{base}/api/auth/signup",
                json={
                    "email": "memory@example.com",
                    "password": "bench password",
                    "company_name": "Memory",
                },
            ) as r:
                staff = {"Authorization": f"Bearer {(await r.json())['access_token']}"}
            rng = random.Random(5)
            for size in sizes:
                text = []
                while sum(len(t) + 2 for t in text) < size:
                    text.append(paragraph(rng, 6))
                body = "\n\n".join(text)[:size]
                form = aiohttp.FormData()
                form.add_field(
                    "file", body.encode(), filename=f"text-{size}.txt", content_type="text/plain"
                )
                await asyncio.sleep(1)
                before = peak = process.memory_info().rss
                started = time.perf_counter()
                async with session.post(
                    f"{base}/api/knowledge-base/upload", data=form, headers=staff
                ) as r:
                    document = await r.json()
                while True:
                    peak = max(peak, process.memory_info().rss)
                    async with session.get(
                        f"{base}/api/knowledge-base/{document['id']}", headers=staff
                    ) as r:
                        status = (await r.json()).get("status") or await r.text()
                    if status in ("processed", "failed"):
                        break
                    if status not in ("pending", "processing"):
                        raise RuntimeError(f"unexpected status: {status}")
                    for _ in range(25):
                        await asyncio.sleep(0.02)
                        peak = max(peak, process.memory_info().rss)
                took = time.perf_counter() - started
                await asyncio.sleep(3)
                after = process.memory_info().rss
                async with session.get(
                    f"{base}/api/knowledge-base/{document['id']}", headers=staff
                ) as r:
                    chunks = (await r.json()).get("chunk_count")
                figures.append(
                    {
                        "bytes": size,
                        "chunks": chunks,
                        "status": status,
                        "seconds": round(took, 1),
                        "rss_before_mb": round(before / 2**20, 1),
                        "peak_extra_mb": round((peak - before) / 2**20, 1),
                        "after_extra_mb": round((after - before) / 2**20, 1),
                    }
                )
    finally:
        hub.terminate()
        await hub.wait()
    return figures


async def main(documents: int, sizes: list[int], queries: int, memory_sizes: list[int]) -> dict:
    results: dict = {}
    if memory_sizes:
        async with scratch_database() as url:
            results["ingest_memory"] = await ingestion_memory(url, memory_sizes)
        emit(
            "knowledge-memory",
            table(
                ["text", "chunks", "took", "RSS before", "peak above it", "3 s after, above it"],
                [
                    (
                        f"{f['bytes'] // 1000} KB",
                        f["chunks"],
                        f"{f['seconds']} s",
                        f"{f['rss_before_mb']} MiB",
                        f"{f['peak_extra_mb']} MiB",
                        f"{f['after_extra_mb']} MiB",
                    )
                    for f in results["ingest_memory"]
                ],
            ),  # fmt: skip
        )
    if not documents and not sizes:
        return results
    async with scratch_database() as url:
        results["ingest"] = await ingestion(url, documents)
        ingest = results["ingest"]
        stall = ingest["max_loop_stall_ms"]
        emit(
            "knowledge-ingest",
            table(
                ["figure", "value", "goal"],
                [
                    (
                        "ingestion, local embedder",
                        f"{ingest['chunks_per_s']} chunks/s (2 cores)",
                        "",
                    ),
                    (
                        "longest event-loop stall while ingesting",
                        f"{stall} ms (p99 {ingest['p99_loop_stall_ms']} ms)",
                        f"≤ 50 ms {'✓' if stall <= 50 else '✗'}",
                    ),
                ],
            ),  # fmt: skip
        )
        results["search"] = []
        for size in sizes:
            results["search"].append(await search_latency(url, size, queries))
        emit(
            "knowledge-search",
            table(
                [
                    "chunks",
                    "index",
                    "API p50",
                    "API p99",
                    "raw FAISS p50",
                    "raw embedding + FAISS p50",
                    "API / raw",
                    "cache size",
                ],
                [
                    (
                        number(size),
                        f["index"],
                        f"{f['api_p50_ms']} ms",
                        f"{f['api_p99_ms']} ms",
                        f"{f['raw_faiss_p50_ms']} ms",
                        f"{f['raw_embed_and_faiss_p50_ms']} ms",
                        f"{f['ratio_api_to_raw_embed_and_faiss']}×",
                        f"{f['index_mb']} MB",
                    )
                    for size, f in zip(sizes, results["search"], strict=True)
                ],
            ),  # fmt: skip
        )
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--documents", type=int, default=40)
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--memory-sizes", type=int, nargs="*", default=[75_000, 1_000_000], metavar="BYTES"
    )
    args = parser.parse_args()
    print(
        json.dumps(asyncio.run(main(args.documents, args.sizes, args.queries, args.memory_sizes)))
    )
