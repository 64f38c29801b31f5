"""The knowledge base at work: ingestion (extract → chunk → embed → store)
and search (vector, keyword, hybrid). One instance per process; it is
`services.knowledge`, so REST search and chat turns use the same function."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

import numpy as np

from agents_runtime.heap import release_free_memory
from agents_runtime.knowledge import fusion
from agents_runtime.knowledge.bm25 import parse_tsvector
from agents_runtime.knowledge.embeddings import (
    CHUNKING_VERSION,
    Embedder,
    LocalEmbedder,
    OpenAIEmbedder,
    chunk,
)
from agents_runtime.knowledge.extract import ExtractError, extract, storable
from agents_runtime.knowledge.index import IndexCache, build, single_threaded
from hub.config import Settings
from hub.events import Event
from hub.knowledge import SearchMode
from hub.notifications import notify
from hub.services import Core
from hub.store import knowledge as store
from hub.uploads import document_type

log = logging.getLogger(__name__)

# Attempts at one document: a failure that repeats itself ends it sooner.
MAX_ATTEMPTS = 3
_EXCLUSION = re.compile(r"(?:^|\s)-(\w+)")  # web-search syntax: -word leaves out what holds it
# Small batches: each is a short, bounded stretch of CPU work, and its
# buffers bound what ingestion holds above the loaded model. Measured on
# 60 chunks of ~256 tokens (RSS peak above the process before them): 1 chunk
# a run +11 MB, 2 +54 MB, 4 +190 MB, 16 +320 MB, for about the same time
# per chunk on 2 cores. A chunk's vector is the same in any batch.
EMBED_BATCH = 2


@functools.cache
def _local_embedder() -> LocalEmbedder:
    return LocalEmbedder()  # one model per process, loaded on first use


def build_embedder(settings: Settings) -> Embedder:
    if settings.embedding_provider == "openai":
        model = settings.embedding_model or "text-embedding-3-small"
        dimension = 3072 if model.endswith("-large") else 1536
        return OpenAIEmbedder(settings.openai_api_key, settings.openai_base_url, model, dimension)
    return _local_embedder()


def _build_index(ids, vectors, agents, raw_terms: dict[int, str]):
    """In the executor: parsing every chunk's lexemes is CPU work too."""
    return build(ids, vectors, agents, _parsed(raw_terms))


def _update_index(entry, removed, vectors, ids, agents, raw_terms: dict[int, str]) -> bool:
    """In the executor, as `_build_index`."""
    return entry.update(removed, vectors, ids, agents, _parsed(raw_terms))


def _parsed(raw_terms: dict[int, str]) -> dict:
    return {i: parse_tsvector(t) for i, t in raw_terms.items()}


class Knowledge:
    def __init__(self, services: Core, embedder: Embedder | None = None) -> None:
        self.services = services
        self._embedder = embedder
        self.cache = IndexCache(services.settings.knowledge_index_budget_mb * 2**20)
        # CPU work (extraction, embeddings, FAISS) runs here, never on the event loop.
        self.executor = ThreadPoolExecutor(
            max_workers=2, thread_name_prefix="knowledge", initializer=single_threaded
        )
        self._wake = asyncio.Event()
        self._building: dict[UUID, asyncio.Task] = {}  # index builds, per company
        self._changes: dict[UUID, int] = {}  # per company, changes seen so far
        self._gaps = 0  # times the bus may have lost changes: every index is suspect
        services.events.subscribe(self._on_event)
        services.events.on_gap(self.forget_all)

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = build_embedder(self.services.settings)
        return self._embedder

    @property
    def embedding_key(self) -> str:
        """What chunks record as their `embedding_model`: the model and the
        chunking that made them. Search uses only vectors of the current key,
        and a change of either processes the documents again."""
        return f"{self.embedder.name}@chunks-v{CHUNKING_VERSION}"

    async def _cpu(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def _on_event(self, event: Event) -> None:
        if event.type == "knowledge.changed":
            await self.apply_change(event.company_id, event.data)
        elif event.type == "knowledge.queued":
            self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    async def forget_all(self) -> None:
        """Changes may have been published while this process could not hear
        them (Redis restarted): every cached index may be stale, so each is
        built again from PostgreSQL on its company's next search."""
        self._gaps += 1  # and builds in flight are used once, not kept
        self.cache.clear()
        self._wake.set()  # documents queued meanwhile

    async def apply_change(self, company_id: UUID, change: dict) -> None:
        """Update the company's cached index in place; drop it on any doubt."""
        self._changes[company_id] = self._changes.get(company_id, 0) + 1  # builds in flight restart
        entry = self.cache.get(company_id)
        if entry is None:
            return
        removed = [int(i) for i in change.get("removed", [])]
        added_ids = [int(i) for i in change.get("added", [])]
        try:
            rows = []
            if added_ids:
                async with self.services.db.tenant(company_id) as conn:
                    rows = await store.vectors_by_ids(conn, added_ids)
            dimension = self.embedder.dimension
            vectors = np.array([r["embedding"] for r in rows], dtype=np.float32).reshape(
                len(rows), dimension
            )
            ids = np.array([r["vector_id"] for r in rows], dtype=np.int64)
            agents = {r["vector_id"]: r["agent_id"] for r in rows}
            raw_terms = {r["vector_id"]: r["terms"] for r in rows}
            if await self._cpu(_update_index, entry, removed, vectors, ids, agents, raw_terms):
                return
        except Exception:
            log.exception('{"event":"index_update_failed","company_id":"%s"}', company_id)
        self.cache.drop(company_id)

    # ---------- search ----------

    async def search(
        self,
        company_id: UUID,
        query: str,
        *,
        limit: int = 5,
        threshold: float | None = None,
        agent_id: UUID | None = None,
        mode: SearchMode = "hybrid",
    ) -> list[dict[str, Any]]:
        # Every mode scores 0–1 (fusion.py), so the threshold means the same in each.
        if mode == "vector":
            hits = await self._vector(company_id, query, limit, agent_id)
        elif mode == "keyword":
            hits = await self._keyword(company_id, query, limit, agent_id)
        else:
            hits = await self._hybrid(company_id, query, max(limit, fusion.DEPTH), agent_id)
        hits = [(i, round(s, 6)) for i, s in hits]
        hits = [(i, s) for i, s in hits if threshold is None or s >= threshold][:limit]
        if not hits:
            return []
        async with self.services.db.tenant(company_id) as conn:
            rows = {
                r["vector_id"]: r
                for r in await store.chunks_by_vector_ids(conn, [i for i, _ in hits])
            }
        # A chunk deleted since the index was built is simply gone from the answer.
        return [self._result(rows[i], s) for i, s in hits if i in rows]

    @staticmethod
    def _result(row: dict, score: float) -> dict[str, Any]:
        return {
            "document_id": row["document_id"],
            "chunk_id": row["chunk_id"],
            "content": row["content"],
            "score": score,
            "metadata": {
                "source": row["filename"] or row["title"],
                "title": row["title"],
                "page": row["page"],
                "heading": row["heading"],
            },
        }

    async def _lexemes(self, company_id, query, agent_id) -> tuple[Counter, set[int] | None, bool]:
        """The query's lexemes (PostgreSQL's `english` analysis, as the
        chunks'), and when it is written as a web search, the chunks that
        satisfy all of it — with whether it excludes words (-word)."""
        excluded = _EXCLUSION.findall(query)
        async with self.services.db.tenant(company_id) as conn:
            terms = parse_tsvector(await store.query_terms(conn, query))
            if excluded:
                # What is excluded is not asked for: no part of the score's ceiling.
                for term in parse_tsvector(await store.query_terms(conn, " ".join(excluded))):
                    terms.pop(term, None)
            strict = None
            if terms and (excluded or '"' in query):
                strict = set(await store.strict_matches(conn, company_id, query, agent_id))
        return terms, strict, bool(excluded)

    async def _keyword(self, company_id, query, limit, agent_id) -> list[tuple[int, float]]:
        """BM25 over the company's chunks: any of the query's words matches.
        A query written as a web search keeps its meaning: with -exclusions
        only chunks satisfying all of it count; with "quoted phrases" the
        chunks holding them come first."""
        index = await self._index(company_id)
        terms, strict, excluding = await self._lexemes(company_id, query, agent_id)
        if not terms:
            return []
        hits = await self._cpu(
            index.keyword_search, terms, limit, agent_id, strict if excluding else None
        )
        if strict and not excluding:
            hits.sort(key=lambda hit: hit[0] not in strict)  # stable: BM25 order within each
        return hits

    async def _hybrid(self, company_id, query, depth, agent_id) -> list[tuple[int, float]]:
        """Both sides' candidates, each scored on both sides (fusion.combine).
        The query's embedding and its lexemes are made at the same time."""
        index = await self._index(company_id)
        if not len(index.keywords):
            return []  # nothing indexed yet: no query embedding to make
        embedding, (terms, strict, excluding) = await asyncio.gather(
            self._cpu(self._embed, query), self._lexemes(company_id, query, agent_id)
        )
        allowed = strict if excluding else None
        return await self._cpu(index.hybrid_search, embedding, terms, depth, agent_id, allowed)

    async def _vector(self, company_id, query, limit, agent_id) -> list[tuple[int, float]]:
        index = await self._index(company_id)
        if index.index.ntotal == 0:
            return []
        return await self._cpu(self._embed_and_search, index, query, limit, agent_id)

    def _embed_and_search(self, index, query, limit, agent_id) -> list[tuple[int, float]]:
        """In one trip to the executor: a hop costs more than FAISS's search."""
        return index.search(self._embed(query), limit, agent_id)

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        """In the executor. The batch's buffers are given back to the system
        after it (agents_runtime.heap): the executor's threads would each
        keep theirs."""
        try:
            return self.embedder.embed(texts)
        finally:
            release_free_memory()

    def _embed(self, query: str) -> np.ndarray:
        return self.embedder.embed([query])[0]

    async def _index(self, company_id: UUID):
        cached = self.cache.get(company_id)
        if cached is not None:
            return cached
        building = self._building.get(company_id)
        if building is None:  # one build per company at a time
            building = self._building[company_id] = asyncio.create_task(self._build(company_id))
            building.add_done_callback(lambda done: self._built(company_id, done))
        # Shielded: a search that gives up (a turn's retrieval budget) leaves
        # the build running, so that a large index is ready for the next one.
        return await asyncio.shield(building)

    def _built(self, company_id: UUID, done: asyncio.Task) -> None:
        self._building.pop(company_id, None)
        if not done.cancelled() and done.exception() is not None:
            log.warning('{"event":"index_build_failed","company_id":"%s"}', company_id)

    async def _build(self, company_id: UUID):
        changes_before = (self._gaps, self._changes.get(company_id, 0))
        dimension = self.embedder.dimension
        id_parts, vector_parts, agents, terms = [], [], {}, {}
        async with self.services.db.tenant(company_id) as conn:
            async for batch in store.vectors(conn, company_id, self.embedding_key):
                terms.update((r["vector_id"], r["terms"]) for r in batch)
                agents.update((r["vector_id"], r["agent_id"]) for r in batch)
                rows = [r for r in batch if r["embedding"] is not None]
                id_parts.append(np.array([r["vector_id"] for r in rows], dtype=np.int64))
                vector_parts.append(
                    np.array([r["embedding"] for r in rows], dtype=np.float32).reshape(
                        len(rows), dimension
                    )
                )
        ids = np.concatenate(id_parts) if id_parts else np.zeros(0, dtype=np.int64)
        vectors = (
            np.concatenate(vector_parts)
            if vector_parts
            else np.zeros((0, dimension), dtype=np.float32)
        )
        entry = await self._cpu(_build_index, ids, vectors, agents, terms)
        # A change that arrived while we read may be missing from what we
        # built: use it for this search, but do not keep it.
        if (self._gaps, self._changes.get(company_id, 0)) == changes_before:
            self.cache.put(company_id, entry)
        return entry

    # ---------- ingestion ----------

    async def run(self, poll: float = 5.0) -> None:
        """Process documents until cancelled. Several processes may run this:
        each document is claimed by one (FOR UPDATE SKIP LOCKED), and one
        whose processor died is taken over when its lease runs out."""
        loops = self.services.loops
        await loops.attempt("reembed_requeue", self.requeue_other_models)
        while True:
            processed = await loops.attempt("ingestion", self.process_next)
            if not processed:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), poll)

    async def requeue_other_models(self) -> int:
        """The embedding model (EMBEDDING_PROVIDER/EMBEDDING_MODEL) or the
        chunking changed: documents embedded otherwise are processed again, so that
        search, which never mixes two models' vectors, finds them again."""
        async with self.services.db.system() as conn:
            count = await store.requeue_other_models(conn, self.embedding_key)
        if count:
            log.info('{"event":"reembed_queued","documents":%d}', count)
        return count

    async def process_next(self) -> bool:
        db = self.services.db
        async with db.system() as conn:
            document = await store.claim(conn)
            if document is None:
                return False
            # The dashboard shows each document's status as it changes.
            processing = {"document_id": document["id"]}
            db.publish_after_commit(
                conn, Event("knowledge.processing", document["company_id"], processing)
            )
        await self._process(document)
        return True

    async def _process(self, document: dict) -> None:
        """One attempt; never one too many. Any failure counts, storing the
        passages included, and is remembered in PostgreSQL: whichever
        process claims the document next knows what came before."""
        try:
            if document["attempts"] > MAX_ATTEMPTS:
                # Each earlier attempt's lease ran out: its processor stopped
                # mid-way every time, perhaps because of this document.
                last = document["last_error"]
                reason = f"Processing did not finish after {MAX_ATTEMPTS} attempts" + (
                    f" (the last failure: {last})." if last else " (each was interrupted)."
                )
                await self._finish(document, None, reason)
            else:
                await self._ingest(document)
        except asyncio.CancelledError:
            # Stopping: hand the document back now, not when its lease runs out.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._release(document))
            raise
        except Exception as exc:
            log.exception('{"event":"ingestion_failed","document_id":"%s"}', document["id"])
            await self._attempt_failed(document, exc)

    async def _attempt_failed(self, document: dict, exc: Exception) -> None:
        """Tried again at once, unless it failed the same way as the last
        attempt or this was the last one allowed: then it ends `failed`."""
        reason, _ = storable(f"Processing failed: {type(exc).__name__}: {exc}"[:500])
        if document["attempts"] >= MAX_ATTEMPTS or reason == document["last_error"]:
            await self._finish(document, None, reason)
            return
        async with self.services.db.tenant(document["company_id"]) as conn:
            await store.retry(conn, document["id"], reason)
        self.wake()

    async def _release(self, document: dict) -> None:
        async with self.services.db.tenant(document["company_id"]) as conn:
            await store.release(conn, document["id"])

    async def _ingest(self, document: dict) -> None:
        kind = document["content_type"] or document_type(document["file"], document["filename"])
        budget = self.services.settings.knowledge_max_upload_bytes
        try:
            extracted = await self._cpu(extract, document["file"], kind, budget)
        except ExtractError as exc:  # the file's fault, and it will not change: no retry
            await self._finish(document, None, str(exc))
            return
        pieces = await self._cpu(chunk, extracted.sections, self.embedder)
        vectors = []
        for start in range(0, len(pieces), EMBED_BATCH):
            batch = [p.embedding_text() for p in pieces[start : start + EMBED_BATCH]]
            vectors.extend(await self._cpu(self._embed_batch, batch))
        rows = [
            (p.position, p.page, p.heading, p.content, p.tokens, v.tolist())
            for p, v in zip(pieces, vectors, strict=True)
        ]
        await self._finish(document, rows, None, extracted.notice)

    async def _finish(
        self, document: dict, rows: list | None, error: str | None, notice: str | None = None
    ) -> None:
        company_id = document["company_id"]
        db = self.services.db
        if error:
            body = error
        else:
            body = f"{len(rows or [])} passages can now ground answers." + (
                f" {notice}" if notice else ""
            )
        async with db.tenant(company_id) as conn:
            if await store.get_document(conn, document["id"]) is None:
                return  # deleted while we worked
            # A failed document keeps no chunks: what is not processed is not searched.
            removed, added = await store.replace_chunks(
                conn,
                company_id=company_id,
                document_id=document["id"],
                agent_id=document["agent_id"],
                model=self.embedding_key,
                chunks=rows or [],
            )
            await store.finish(
                conn,
                document["id"],
                chunk_count=None if rows is None else len(rows),
                error=error,
                notice=notice,
            )
            await notify(
                db,
                conn,
                company_id=company_id,
                type="document_failed" if error else "document_processed",
                title=f"{document['title']}: " + ("could not be processed" if error else "ready"),
                body=body,
                data={"document_id": str(document["id"])},
            )
            change = {"document_id": document["id"], "removed": removed, "added": added}
            db.publish_after_commit(conn, Event("knowledge.changed", company_id, change))
        log.info(
            '{"event":"document_%s","document_id":"%s"}',
            "failed" if error else "processed",
            document["id"],
        )

    async def add_text(
        self,
        company_id: UUID,
        *,
        title: str,
        filename: str,
        text: str,
        agent_id: UUID | None = None,
    ) -> dict:
        """Queue a text document (the demo's knowledge) as an upload would."""
        async with self.services.db.tenant(company_id) as conn:
            document = await store.create_document(
                conn,
                company_id=company_id,
                agent_id=agent_id,
                title=title,
                description=None,
                filename=filename,
                content_type="text/markdown",
                data=text.encode(),
            )
        self.wake()
        return document

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
