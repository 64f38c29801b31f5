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
negative, so a term in most chunks of a tiny knowledge base still counts;
each is returned as a share of the query's ceiling, the BM25 a chunk would
score holding every query word infinitely often (each term's
idf × (k1 + 1)), so that it lies in 0–1 like the other modes' scores
(fusion.py). Within one query that is a constant factor: the ranking is
BM25's own.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
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
    statistics BM25 needs, kept exact under additions and removals. Each
    chunk also has a slot (a dense row number, reused after a removal), so
    that a query's scores add up in one array rather than a dictionary."""

    def __init__(self, k1: float = K1, b: float = B) -> None:
        self.k1, self.b = k1, b
        self.postings: dict[str, dict[int, int]] = {}
        self.terms: dict[int, Counter[str]] = {}  # vector id -> its lexeme counts
        self.lengths: dict[int, int] = {}
        self.agents: dict[int, UUID | None] = {}
        self.total_length = 0
        self._slots: dict[int, int] = {}  # vector id -> slot
        self._free: list[int] = []
        self._slot_ids = np.zeros(0, dtype=np.int64)  # slot -> vector id
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # built on use

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
        if self._free:
            slot = self._free.pop()
        else:
            slot = len(self._slots)
            if slot == len(self._slot_ids):
                grown = np.zeros(max(64, 2 * slot), dtype=np.int64)
                grown[:slot] = self._slot_ids
                self._slot_ids = grown
        self._slots[vector_id] = slot
        self._slot_ids[slot] = vector_id
        for term, tf in terms.items():
            self.postings.setdefault(term, {})[vector_id] = tf
            self._arrays.pop(term, None)

    def remove(self, vector_id: int) -> None:
        terms = self.terms.pop(vector_id, None)
        if terms is None:
            return
        self.agents.pop(vector_id, None)
        self.total_length -= self.lengths.pop(vector_id)
        self._free.append(self._slots.pop(vector_id))
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

    def ceiling(self, query_terms: Counter[str]) -> float:
        """The most BM25 can give this query: every term's idf × (k1 + 1),
        as many times as it is asked; a word no chunk holds counts too (with
        the highest idf), since a chunk without it answers less of the query."""
        return sum(count * self.idf(term) * (self.k1 + 1) for term, count in query_terms.items())

    def score(self, vector_id: int, query_terms: Counter[str]) -> float:
        """One chunk's BM25 for the query, as a share of the ceiling (0 for a
        chunk it does not know)."""
        return self.scores([vector_id], query_terms)[vector_id]

    def scores(self, vector_ids: Iterable[int], query_terms: Counter[str]) -> dict[int, float]:
        """Chunks' BM25 for the query, each as a share of the ceiling (0 for
        a chunk it does not know): hybrid search asks this of the chunks that
        only the vector side found. The ceiling and the average length are
        the query's and the index's, so they are worked out once for all."""
        ceiling = self.ceiling(query_terms)
        if not self.terms or ceiling <= 0:
            return dict.fromkeys(vector_ids, 0.0)
        average = self.total_length / len(self.terms) or 1.0
        idfs = {term: self.idf(term) for term in query_terms}
        found = {}
        for vector_id in vector_ids:
            terms = self.terms.get(vector_id)
            total = 0.0
            if terms is not None:
                norm = self.k1 * (1 - self.b + self.b * self.lengths[vector_id] / average)
                for term, count in query_terms.items():
                    tf = terms.get(term, 0)
                    if tf:
                        total += count * idfs[term] * tf * (self.k1 + 1) / (tf + norm)
            found[vector_id] = total / ceiling
        return found

    def _posting_arrays(self, term: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(slots, term frequencies, chunk lengths) of the chunks holding `term`."""
        arrays = self._arrays.get(term)
        if arrays is None:
            posting = self.postings[term]
            count = len(posting)
            slots = np.fromiter((self._slots[i] for i in posting), dtype=np.int64, count=count)
            tfs = np.fromiter(posting.values(), dtype=np.float64, count=count)
            lengths = np.fromiter((self.lengths[i] for i in posting), dtype=np.float64, count=count)
            arrays = self._arrays[term] = (slots, tfs, lengths)
        return arrays

    def search(
        self,
        query_terms: Counter[str],
        k: int,
        agent_id: UUID | None = None,
        allowed: set[int] | None = None,
    ) -> list[tuple[int, float]]:
        """(vector id, BM25 score as a share of the ceiling), best first:
        chunks holding at least one of the query's terms (a term asked twice
        counts twice, as in Lucene), for the agent's documents and the
        unattached ones (all, without an agent), and only those in `allowed`
        when given."""
        if not self.terms or k <= 0:
            return []
        average = self.total_length / len(self.terms) or 1.0
        scores = np.zeros(len(self._slot_ids))
        for term, count in query_terms.items():
            if term not in self.postings:
                continue
            slots, tfs, lengths = self._posting_arrays(term)
            norm = tfs + self.k1 * (1 - self.b + self.b * lengths / average)
            # A term's slots are distinct, so plain fancy-index addition is exact.
            scores[slots] += count * self.idf(term) * tfs * (self.k1 + 1) / norm
        matched = np.flatnonzero(scores)
        if not len(matched):
            return []
        ceiling = self.ceiling(query_terms)
        if agent_id is None and allowed is None and len(matched) > k:
            matched = matched[np.argpartition(-scores[matched], k - 1)[:k]]
        # Best first; equal scores in slot order, so the answer is deterministic.
        order = matched[np.lexsort((matched, -scores[matched]))]
        hits = []
        for slot in order:
            vector_id = int(self._slot_ids[slot])
            if allowed is not None and vector_id not in allowed:
                continue
            if agent_id is not None and self.agents.get(vector_id) not in (None, agent_id):
                continue
            hits.append((vector_id, float(scores[slot]) / ceiling))
            if len(hits) == k:
                break
        return hits
