"""The keyword half of search, checked by hand: BM25 scores as a share of
the query's ceiling, the statistics kept right through additions and
removals, and the hybrid combination of the two sides."""

from __future__ import annotations

import math
import uuid
from collections import Counter

import pytest

from agents_runtime.knowledge.bm25 import KeywordIndex, parse_tsvector
from agents_runtime.knowledge.fusion import combine


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
    # Each is returned as a share of the ceiling: every query term's idf × (k1 + 1).
    vitamin, sleep = math.log(8 / 3), math.log(1.6)
    query = Counter({"vitamin": 1, "sleep": 1})
    ceiling = (vitamin + sleep) * 1.9
    assert index.ceiling(query) == pytest.approx(ceiling)
    hits = index.search(query, 10)
    assert [vector_id for vector_id, _ in hits] == [1, 3, 2]
    scores = dict(hits)
    assert scores[1] == pytest.approx(vitamin * 3.8 / 2.945 / ceiling)
    assert scores[3] == pytest.approx(sleep * 5.7 / 3.945 / ceiling)
    assert scores[2] == pytest.approx(sleep * 1.9 / 1.81 / ceiling)
    # One chunk's score alone is the same number (hybrid asks for it).
    assert {i: index.score(i, query) for i in scores} == pytest.approx(scores)
    assert index.score(99, query) == 0.0
    # A word asked twice counts twice; a word no chunk holds lowers the share
    # (a chunk without it answers less of the query); k cuts.
    unheard = math.log(1 + 3.5 / 0.5)
    twice = dict(index.search(Counter({"sleep": 2, "unheard": 1}), 1))
    assert twice == {3: pytest.approx(2 * sleep * 5.7 / 3.945 / ((2 * sleep + unheard) * 1.9))}
    assert index.search(Counter({"unheard": 1}), 10) == []


def test_keyword_scores_lie_within_0_and_1():
    index = KeywordIndex(k1=0.9, b=0.4)
    index.add(1, Counter({"refund": 50}), None)  # a very short chunk saying it over and over
    for i in range(2, 40):
        index.add(i, Counter({"shipping": 3, "days": 2, "tracked": 1}), None)
    [(_, best)] = index.search(Counter({"refund": 1}), 1)
    assert 0.9 < best < 1
    assert all(0 < s < 1 for _, s in index.search(Counter({"shipping": 1, "refund": 1}), 50))


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


def test_hybrid_is_the_weighted_mean_of_the_two_scores():
    candidates = [1, 2, 3, 4]
    vector = {1: 0.9, 2: 0.5, 3: 0.1}  # 4 has no vector (yet)
    keyword = {3: 0.8, 4: 0.4, 2: 0.0}  # 1 shares no word with the query
    fused = combine(candidates, vector, keyword, weight=0.5)
    assert dict(fused) == pytest.approx({1: 0.45, 2: 0.25, 3: 0.45, 4: 0.2})
    assert [i for i, _ in fused] == [1, 3, 2, 4]  # ties keep the candidates' order
    assert dict(combine(candidates, vector, keyword, weight=0.25)) == pytest.approx(
        {1: 0.225, 2: 0.125, 3: 0.625, 4: 0.3}
    )
    # A query of stop words only has no keyword side: the vector score stands alone.
    assert dict(combine(candidates, vector, None)) == {1: 0.9, 2: 0.5, 3: 0.1, 4: 0.0}
    assert combine([], {}, {}) == []
