"""Per-company search indexes — FAISS over the vectors, BM25 over the
full-text lexemes: a cache of what PostgreSQL holds.

Built lazily on a company's first search; updated in place when its chunks
change (a `knowledge.changed` event, from any process, names the vector ids
removed and added); dropped and rebuilt on any doubt; evicted
least-recently-used beyond a memory budget. So every process is stateless
and memory follows the working set, not every tenant's total.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from uuid import UUID

import faiss
import numpy as np

from agents_runtime.knowledge import fusion
from agents_runtime.knowledge.bm25 import KeywordIndex


def single_threaded() -> None:
    """Single queries: one OpenMP thread (two were 3-7x slower per query
    here). The setting is per thread: call it in every thread that searches."""
    faiss.omp_set_num_threads(1)


single_threaded()

HNSW_ABOVE = 50_000  # exact search below this many vectors; HNSW (approximate) above


@dataclass
class CompanyIndex:
    index: faiss.Index
    agents: dict[int, UUID | None]  # vector id -> the agent its document is attached to
    nbytes: int
    kind: str  # "flat" (exact) or "hnsw" (approximate)
    keywords: KeywordIndex = field(default_factory=KeywordIndex)
    built_at: float = field(default_factory=time.monotonic)
    # FAISS indexes are not safe to change while searched: one at a time.
    lock: threading.Lock = field(default_factory=threading.Lock)

    def update(
        self,
        removed: list[int],
        added: np.ndarray,
        added_ids: np.ndarray,
        agents: dict,
        terms: dict[int, Counter[str]] | None = None,
    ) -> bool:
        """Apply a change in place (`terms`: the added chunks' lexeme counts);
        False when this index cannot (HNSW cannot remove vectors), and the
        caller must rebuild it instead."""
        with self.lock:
            if removed:
                if self.kind == "hnsw":
                    return False
                self.index.remove_ids(np.array(removed, dtype=np.int64))
                for vector_id in removed:
                    self.agents.pop(vector_id, None)
                    self.keywords.remove(vector_id)
            if len(added_ids):
                self.index.add_with_ids(added, added_ids)
                self.agents.update(agents)
            for vector_id, counts in (terms or {}).items():
                self.keywords.add(vector_id, counts, agents.get(vector_id))
            vectors = self.index.ntotal * self.index.d * 4 * (2 if self.kind == "hnsw" else 1)
            self.nbytes = vectors + self.keywords.nbytes
            return True

    def keyword_search(
        self, terms: Counter[str], k: int, agent_id: UUID | None, allowed: set[int] | None
    ) -> list[tuple[int, float]]:
        """(vector id, BM25 as a share of the query's ceiling), best first."""
        with self.lock:
            return self.keywords.search(terms, k, agent_id, allowed)

    def search(self, query: np.ndarray, k: int, agent_id: UUID | None) -> list[tuple[int, float]]:
        """(vector id, cosine similarity clamped to 0–1), best first, for the
        agent's documents and the company's unattached ones (all, without an
        agent)."""
        with self.lock:
            return self._search(query, k, agent_id)

    def hybrid_search(
        self,
        query: np.ndarray,
        terms: Counter[str],
        k: int,
        agent_id: UUID | None,
        allowed: set[int] | None,
    ) -> list[tuple[int, float]]:
        """(vector id, hybrid score), best first (fusion.combine): `k`
        candidates from each side, and each candidate's score on the side
        that did not find it computed exactly — its cosine from its stored
        vector, its BM25 from its lexemes (0 outside `allowed`, the chunks a
        query with -exclusions admits)."""
        with self.lock:
            vector = dict(self._search(query, k, agent_id))
            keyword = dict(self.keywords.search(terms, k, agent_id, allowed)) if terms else {}
            candidates = list(vector) + [i for i in keyword if i not in vector]
            for vector_id in candidates:
                if vector_id not in vector:
                    vector[vector_id] = self._cosine(query, vector_id)
            if terms:
                unscored = [i for i in candidates if i not in keyword]
                admitted = [i for i in unscored if allowed is None or i in allowed]
                keyword.update(dict.fromkeys(unscored, 0.0))
                keyword.update(self.keywords.scores(admitted, terms))
        return fusion.combine(candidates, vector, keyword if terms else None)

    def _cosine(self, query: np.ndarray, vector_id: int) -> float:
        try:
            stored = self.index.reconstruct(vector_id)
        except RuntimeError:  # no vector yet (waiting to be embedded by a new model)
            return 0.0
        return _similarity(float(stored @ query))

    def _search(self, query: np.ndarray, k: int, agent_id: UUID | None) -> list[tuple[int, float]]:
        if self.index.ntotal == 0:
            return []
        wanted = min(self.index.ntotal, k * 4 if agent_id else k)
        while True:
            scores, ids = self.index.search(query.reshape(1, -1), wanted)
            hits = [
                (int(i), _similarity(float(s)))
                for i, s in zip(ids[0], scores[0], strict=True)
                if i >= 0 and (agent_id is None or self.agents.get(int(i)) in (None, agent_id))
            ]
            # Other agents' documents can crowd the top: look deeper if they did.
            if len(hits) >= k or wanted >= self.index.ntotal:
                return hits[:k]
            wanted = min(self.index.ntotal, wanted * 4)


def _similarity(cosine: float) -> float:
    """A cosine as a 0–1 score: opposite meaning is no better than none
    (and rounding may take a vector's cosine with itself past 1)."""
    return min(max(cosine, 0.0), 1.0)


def build(
    ids: np.ndarray,
    vectors: np.ndarray,
    agents: dict[int, UUID | None],
    terms: dict[int, Counter[str]] | None = None,
) -> CompanyIndex:
    """`vectors`: (n, dimension), n may be 0: an empty company's index takes
    the embedder's dimension like any other, so that its first vectors fit.
    `terms`: every chunk's lexeme counts (those waiting for a new model's
    vector too), for BM25."""
    if vectors.ndim != 2 or not vectors.shape[1]:
        raise ValueError(f"vectors must be (n, dimension), not {vectors.shape}")
    dimension = vectors.shape[1]
    if len(vectors) > HNSW_ABOVE:
        inner = faiss.IndexHNSWFlat(dimension, 32, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efSearch = 128
    else:
        inner = faiss.IndexFlatIP(dimension)
    index = faiss.IndexIDMap2(inner)
    if len(vectors):
        index.add_with_ids(vectors, ids)
    hnsw = len(vectors) > HNSW_ABOVE
    keywords = KeywordIndex()
    for vector_id, counts in (terms or {}).items():
        keywords.add(vector_id, counts, agents.get(vector_id))
    return CompanyIndex(
        index,
        agents,
        vectors.nbytes * (2 if hnsw else 1) + keywords.nbytes,
        "hnsw" if hnsw else "flat",
        keywords,
    )


class IndexCache:
    """Company → CompanyIndex, least recently used out first past the budget."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget = budget_bytes
        self._indexes: OrderedDict[UUID, CompanyIndex] = OrderedDict()
        self._lock = threading.Lock()  # searches run in executor threads

    def get(self, company_id: UUID) -> CompanyIndex | None:
        with self._lock:
            entry = self._indexes.get(company_id)
            if entry is not None:
                self._indexes.move_to_end(company_id)
            return entry

    def put(self, company_id: UUID, entry: CompanyIndex) -> None:
        with self._lock:
            self._indexes[company_id] = entry
            self._indexes.move_to_end(company_id)
            while len(self._indexes) > 1 and self.used() > self.budget:
                self._indexes.popitem(last=False)

    def drop(self, company_id: UUID) -> None:
        with self._lock:
            self._indexes.pop(company_id, None)

    def clear(self) -> None:
        with self._lock:
            self._indexes.clear()

    def used(self) -> int:
        return sum(entry.nbytes for entry in self._indexes.values())
