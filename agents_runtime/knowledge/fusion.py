"""Hybrid search's last step: one score, 0–1, from the vector side's and the
keyword side's.

Every mode scores on one scale, so that a `threshold` means the same in
each: the vector score is the cosine similarity (clamped at 0), the keyword
score is BM25 as a share of the most the query's words could score
(`KeywordIndex.ceiling`), and the hybrid score is their weighted mean,
each computed for every candidate either side found — not a score relative
to the other candidates of the same query (rank or z-score fusion), which
would give the best chunk of an unrelated knowledge base a high score.
The weight was measured on SciFact's tuning claims (docs/retrieval.md).
"""

from __future__ import annotations

from collections.abc import Mapping

Hits = list[tuple[int, float]]  # (vector id, score), best first

VECTOR_WEIGHT = 0.5  # the vector side's share; the keyword side has the rest
DEPTH = 100  # candidates asked of each side at least (more when more results are wanted)


def combine(
    candidates: list[int],
    vector: Mapping[int, float],
    keyword: Mapping[int, float] | None,
    *,
    weight: float = VECTOR_WEIGHT,
) -> Hits:
    """(vector id, weight × vector + (1 − weight) × keyword), best first; ties
    keep the candidates' order. A side's score is 0 for a candidate it knows
    nothing of (no shared word; no vector yet). `keyword` is None when the
    query has no searchable word at all (only stop words): keyword search
    cannot judge it, and the vector score stands alone."""
    if keyword is None:
        fused = [(i, vector.get(i, 0.0)) for i in candidates]
    else:
        fused = [
            (i, weight * vector.get(i, 0.0) + (1 - weight) * keyword.get(i, 0.0))
            for i in candidates
        ]
    order = {vector_id: n for n, vector_id in enumerate(candidates)}
    return sorted(fused, key=lambda pair: (-pair[1], order[pair[0]]))
