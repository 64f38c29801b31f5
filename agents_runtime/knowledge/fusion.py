"""Hybrid search's last step: one ranking from the vector and the BM25 ones.

Two families, both measured on SciFact's tuning claims (docs/retrieval.md):
reciprocal-rank fusion (Cormack et al.), which reads only ranks, and
normalised score fusion, which reads how far ahead a candidate is — a
chunk that BM25 scores far above the rest counts for more than one that
merely comes first. The defaults are the measured best.
"""

from __future__ import annotations

import math
from typing import Literal

Method = Literal["rrf", "minmax", "zscore"]
Hits = list[tuple[int, float]]  # (vector id, score), best first

METHOD: Method = "zscore"
VECTOR_WEIGHT = 0.5  # the vector side's share; BM25 has the rest
RRF_K = 60  # reciprocal-rank fusion constant (Cormack et al.)
DEPTH = 100  # candidates asked of each side at least (more when more results are wanted)


def fuse(
    vector: Hits,
    keyword: Hits,
    *,
    method: Method = METHOD,
    weight: float = VECTOR_WEIGHT,
    rrf_k: int = RRF_K,
) -> Hits:
    """Fused (vector id, score), best first; ties keep the vector side's order."""
    if method == "rrf":
        sides = [_reciprocal_ranks(vector, rrf_k), _reciprocal_ranks(keyword, rrf_k)]
    elif method == "minmax":
        sides = [_minmax(vector), _minmax(keyword)]
    else:
        sides = [_zscores(vector), _zscores(keyword)]
    (vector_scores, vector_missing), (keyword_scores, keyword_missing) = sides
    order = {vector_id: i for i, (vector_id, _) in enumerate(vector)}
    for vector_id, _ in keyword:
        order.setdefault(vector_id, len(order))
    fused = [
        (
            vector_id,
            weight * vector_scores.get(vector_id, vector_missing)
            + (1 - weight) * keyword_scores.get(vector_id, keyword_missing),
        )
        for vector_id in order
    ]
    return sorted(fused, key=lambda pair: (-pair[1], order[pair[0]]))


def _reciprocal_ranks(hits: Hits, k: int) -> tuple[dict[int, float], float]:
    return {vector_id: 1 / (k + rank) for rank, (vector_id, _) in enumerate(hits, 1)}, 0.0


def _minmax(hits: Hits) -> tuple[dict[int, float], float]:
    """Scores mapped onto 0..1 across this side's candidates; one not among
    them gets 0, as the weakest would."""
    if not hits:
        return {}, 0.0
    values = [s for _, s in hits]
    low, high = min(values), max(values)
    span = high - low or 1.0
    return {vector_id: (s - low) / span for vector_id, s in hits}, 0.0


def _zscores(hits: Hits) -> tuple[dict[int, float], float]:
    """Standard scores across this side's candidates; one not among them
    gets the weakest candidate's."""
    if not hits:
        return {}, 0.0
    values = [s for _, s in hits]
    mean = math.fsum(values) / len(values)
    spread = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / len(values)) or 1.0
    scores = {vector_id: (s - mean) / spread for vector_id, s in hits}
    return scores, min(scores.values())
