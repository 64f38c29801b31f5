"""The keyword half of search, checked by hand: BM25 scores, the statistics
kept right through additions and removals, and the fusion of two rankings."""

from __future__ import annotations

import math
import uuid
from collections import Counter

import pytest

from agents_runtime.knowledge.bm25 import KeywordIndex, parse_tsvector
from agents_runtime.knowledge.fusion import fuse


def test_a_tsvector_reads_as_lexeme_counts():
    assert parse_tsvector("'bone':3 'densiti':5,9,12 'o''brien':1 'vitamin':2A,7") == {
        "bone": 1,
        "densiti": 3,
        "o'brien": 1,
        "vitamin": 2,
    }
    assert parse_tsvector("'stripped'") == {"stripped": 1}  # no positions: one occurrence
    assert parse_tsvector("") == {}


def corpus() -> KeywordIndex:
    index = KeywordIndex(k1=0.9, b=0.4)
    index.add(1, Counter({"vitamin": 2, "bone": 1}), None)  # length 3
    index.add(2, Counter({"bone": 1, "sleep": 1}), None)  # length 2
    index.add(3, Counter({"sleep": 3}), None)  # length 3
    return index


def test_bm25_on_a_hand_computed_example():
    index = corpus()
    # N = 3 chunks, average length 8/3.
    # idf(vitamin): df 1 -> ln(1 + 2.5/1.5) = ln(8/3); idf(sleep): df 2 -> ln(1 + 1.5/2.5) = ln(1.6)
    # chunk 1, vitamin tf 2, length 3: 2 * 1.9 / (2 + 0.9 * (0.6 + 0.4 * 3 / (8/3))) = 3.8 / 2.945
    # chunk 2, sleep tf 1, length 2:  1.9 / (1 + 0.9 * (0.6 + 0.4 * 0.75)) = 1.9 / 1.81
    # chunk 3, sleep tf 3, length 3:  5.7 / (3 + 0.945) = 5.7 / 3.945
    vitamin, sleep = math.log(8 / 3), math.log(1.6)
    hits = index.search(Counter({"vitamin": 1, "sleep": 1}), 10)
    assert [vector_id for vector_id, _ in hits] == [1, 3, 2]
    scores = dict(hits)
    assert scores[1] == pytest.approx(vitamin * 3.8 / 2.945)
    assert scores[3] == pytest.approx(sleep * 5.7 / 3.945)
    assert scores[2] == pytest.approx(sleep * 1.9 / 1.81)
    # A word asked twice counts twice; an unknown word changes nothing; k cuts.
    twice = dict(index.search(Counter({"sleep": 2, "unheard": 1}), 1))
    assert twice == {3: pytest.approx(2 * sleep * 5.7 / 3.945)}
    assert index.search(Counter({"unheard": 1}), 10) == []


def test_a_term_in_every_chunk_still_counts():
    index = KeywordIndex()
    index.add(1, Counter({"refund": 1}), None)
    [(vector_id, score)] = index.search(Counter({"refund": 1}), 5)
    assert vector_id == 1 and score > 0  # Lucene's idf is never negative


def test_removal_and_re_indexing_keep_the_statistics_exact():
    index = corpus()
    index.add(4, Counter({"vitamin": 1, "sun": 4}), None)
    index.add(2, Counter({"bone": 2}), None)  # re-indexed: replaces what chunk 2 held
    index.remove(4)
    index.remove(99)  # unknown: nothing happens
    fresh = KeywordIndex(k1=0.9, b=0.4)
    fresh.add(1, Counter({"vitamin": 2, "bone": 1}), None)
    fresh.add(2, Counter({"bone": 2}), None)
    fresh.add(3, Counter({"sleep": 3}), None)
    assert index.postings == fresh.postings and index.lengths == fresh.lengths
    assert len(index) == 3 and index.total_length == fresh.total_length == 8
    query = Counter({"vitamin": 1, "bone": 1, "sleep": 1, "sun": 1})
    assert index.search(query, 10) == fresh.search(query, 10)


def test_agents_and_allowed_chunks_filter_the_hits():
    bikes, boats = uuid.uuid4(), uuid.uuid4()
    index = KeywordIndex()
    index.add(1, Counter({"warranty": 1}), bikes)
    index.add(2, Counter({"warranty": 1}), boats)
    index.add(3, Counter({"warranty": 1}), None)
    query = Counter({"warranty": 1})
    assert {i for i, _ in index.search(query, 10, bikes)} == {1, 3}
    assert {i for i, _ in index.search(query, 10)} == {1, 2, 3}
    assert [i for i, _ in index.search(query, 10, allowed={2})] == [2]


def test_fusion_by_rank_and_by_normalised_score():
    vector = [(1, 0.9), (2, 0.5), (3, 0.1)]
    keyword = [(3, 12.0), (4, 6.0), (2, 0.0)]
    # Reciprocal ranks, k = 60, equal shares: 2 is 2nd and 3rd, 3 is 3rd and 1st.
    rrf = dict(fuse(vector, keyword, method="rrf", weight=0.5, rrf_k=60))
    assert rrf[1] == pytest.approx(0.5 / 61)
    assert rrf[2] == pytest.approx(0.5 / 62 + 0.5 / 63)
    assert rrf[3] == pytest.approx(0.5 / 63 + 0.5 / 61)
    assert rrf[4] == pytest.approx(0.5 / 62)
    # Min-max: vector 1 -> 1, 2 -> 0.5, 3 -> 0; keyword 3 -> 1, 4 -> 0.5, 2 -> 0; absent -> 0.
    minmax = fuse(vector, keyword, method="minmax", weight=0.25)
    assert dict(minmax) == pytest.approx({1: 0.25, 2: 0.125, 3: 0.75, 4: 0.375})
    assert [i for i, _ in minmax] == [3, 4, 1, 2]
    # z-scores: vector mean 0.5, sd sqrt(0.32/3); keyword mean 6, sd sqrt(72/3);
    # a candidate missing from a side gets that side's weakest z.
    zv = {1: 0.4 / math.sqrt(0.32 / 3), 2: 0.0, 3: -0.4 / math.sqrt(0.32 / 3)}
    zk = {3: 6 / math.sqrt(24), 4: 0.0, 2: -6 / math.sqrt(24)}
    z = dict(fuse(vector, keyword, method="zscore", weight=0.5))
    assert z[1] == pytest.approx(0.5 * zv[1] + 0.5 * zk[2])
    assert z[4] == pytest.approx(0.5 * zv[3] + 0.5 * zk[4])
    assert z[3] == pytest.approx(0.5 * zv[3] + 0.5 * zk[3])
    assert fuse([], [], method="zscore") == []
    # Ties keep the vector side's order.
    assert [i for i, _ in fuse([(7, 1.0), (8, 1.0)], [], method="minmax")] == [7, 8]
