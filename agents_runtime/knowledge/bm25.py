"""BM25 over a company's chunks: the keyword half of search.

PostgreSQL's `ts_rank_cd` is not BM25 (no inverse document frequency, no
length normalisation that a corpus sets) and ranked SciFact's claims well
below a plain BM25 (docs/retrieval.md). So the ranking is done here, in an
index kept per company beside its FAISS index, the same way: PostgreSQL is
the truth (the chunks' stored `tsv`, PostgreSQL's `english` analysis —
Snowball stemming, stop words — done once at indexing time), the index is a
cache built on the first search and updated in place by `knowledge.changed`
events. Tenant isolation is the FAISS cache's: built under the company's
row-level security, kept under its id. Nothing new to migrate, nothing lost
on a restart.

Scores are Lucene's BM25: idf = ln(1 + (N - df + 0.5) / (df + 0.5)), never
negative, so a term in most chunks of a tiny knowledge base still counts.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from uuid import UUID

import numpy as np

K1 = 0.9  # term-frequency saturation (Anserini's defaults; tuned in docs/retrieval.md)
B = 0.4  # length normalisation

_LEXEME = re.compile(r"'((?:[^']|'')+)'(?::([0-9A-D,]+))?")


def parse_tsvector(text: str) -> Counter[str]:
    """PostgreSQL's text form of a tsvector (`'bone':3 'densiti':5,9`) →
    lexeme counts (a lexeme's positions are its occurrences; PostgreSQL keeps
    at most 256 of them, far more than a chunk holds)."""
    counts: Counter[str] = Counter()
    for lexeme, positions in _LEXEME.findall(text or ""):
        counts[lexeme.replace("''", "'")] = positions.count(",") + 1 if positions else 1
    return counts


class KeywordIndex:
    """Term → {vector id: term frequency}, chunk lengths and the corpus
    statistics BM25 needs, kept exact under additions and removals."""

    def __init__(self, k1: float = K1, b: float = B) -> None:
        self.k1, self.b = k1, b
        self.postings: dict[str, dict[int, int]] = {}
        self.terms: dict[int, Counter[str]] = {}  # vector id -> its lexeme counts
        self.lengths: dict[int, int] = {}
        self.agents: dict[int, UUID | None] = {}
        self.total_length = 0
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # per term, built on use
        self._length_of: dict[int, float] = {}

    def __len__(self) -> int:
        return len(self.terms)

    @property
    def nbytes(self) -> int:
        """A rough size for the cache's memory budget: ~100 bytes a posting."""
        return 100 * sum(len(t) for t in self.terms.values())

    def add(self, vector_id: int, terms: Counter[str], agent_id: UUID | None) -> None:
        if vector_id in self.terms:
            self.remove(vector_id)
        self.terms[vector_id] = terms
        self.agents[vector_id] = agent_id
        length = sum(terms.values())
        self.lengths[vector_id] = length
        self.total_length += length
        for term, tf in terms.items():
            self.postings.setdefault(term, {})[vector_id] = tf
            self._arrays.pop(term, None)

    def remove(self, vector_id: int) -> None:
        terms = self.terms.pop(vector_id, None)
        if terms is None:
            return
        self.agents.pop(vector_id, None)
        self.total_length -= self.lengths.pop(vector_id)
        for term in terms:
            posting = self.postings.get(term)
            if posting is not None:
                posting.pop(vector_id, None)
                if not posting:
                    del self.postings[term]
            self._arrays.pop(term, None)

    def idf(self, term: str) -> float:
        df = len(self.postings.get(term, ()))
        n = len(self.terms)
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    def _posting_arrays(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        arrays = self._arrays.get(term)
        if arrays is None:
            posting = self.postings[term]
            ids = np.fromiter(posting.keys(), dtype=np.int64, count=len(posting))
            tfs = np.fromiter(posting.values(), dtype=np.float64, count=len(posting))
            lengths = np.fromiter(
                (self.lengths[i] for i in posting), dtype=np.float64, count=len(posting)
            )
            arrays = self._arrays[term] = (ids, np.stack([tfs, lengths]))
        return arrays

    def search(
        self,
        query_terms: Counter[str],
        k: int,
        agent_id: UUID | None = None,
        allowed: set[int] | None = None,
    ) -> list[tuple[int, float]]:
        """(vector id, BM25 score), best first: chunks holding at least one of
        the query's terms (a term asked twice counts twice, as in Lucene), for
        the agent's documents and the unattached ones (all, without an agent),
        and only those in `allowed` when given."""
        if not self.terms:
            return []
        average = self.total_length / len(self.terms) or 1.0
        parts_ids, parts_scores = [], []
        for term, count in query_terms.items():
            if term not in self.postings:
                continue
            ids, (tfs, lengths) = self._posting_arrays(term)
            norm = tfs + self.k1 * (1 - self.b + self.b * lengths / average)
            parts_ids.append(ids)
            parts_scores.append(count * self.idf(term) * tfs * (self.k1 + 1) / norm)
        if not parts_ids:
            return []
        ids = np.concatenate(parts_ids)
        unique, inverse = np.unique(ids, return_inverse=True)
        scores = np.bincount(inverse, weights=np.concatenate(parts_scores))
        order = np.argsort(-scores, kind="stable")
        hits = []
        for position in order:
            vector_id = int(unique[position])
            if allowed is not None and vector_id not in allowed:
                continue
            if agent_id is not None and self.agents.get(vector_id) not in (None, agent_id):
                continue
            hits.append((vector_id, float(scores[position])))
            if len(hits) == k:
                break
        return hits
