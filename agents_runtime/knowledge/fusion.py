"""Hybrid search's last step: one ranking from the vector and the BM25 ones.

Two families, both measured on SciFact's tuning claims (docs/retrieval.md):
reciprocal-rank fusion (Cormack et al.), which reads only ranks, and
normalised score fusion, which reads how far ahead a candidate is — a
chunk that BM25 scores far above the rest counts for more than one that
merely comes first. The defaults are the measured best.
"""

from __future__ import annotations

import statistics
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
    documents: dict[int, object] | None = None,
) -> Hits:
    """Fused (vector id, score), best first; ties keep the vector side's order.

    With `documents` (vector id → its document), a chunk that one side did
    not return is credited with what that side gave its document's best
    chunk: one chunk of an abstract may match the words and another the
    meaning, and the document is evidence for both."""
    if method == "rrf":
        sides = [_reciprocal_ranks(vector, rrf_k), _reciprocal_ranks(keyword, rrf_k)]
    elif method == "minmax":
        sides = [_minmax(vector), _minmax(keyword)]
    else:
        sides = [_zscores(vector), _zscores(keyword)]
    order = {vector_id: i for i, (vector_id, _) in enumerate(vector)}
    for vector_id, _ in keyword:
        order.setdefault(vector_id, len(order))
    lookups = [_with_documents(scores, missing, documents) for scores, missing in sides]
    fused = [
        (vector_id, weight * lookups[0](vector_id) + (1 - weight) * lookups[1](vector_id))
        for vector_id in order
    ]
    return sorted(fused, key=lambda pair: (-pair[1], order[pair[0]]))


def _with_documents(scores: dict[int, float], missing: float, documents: dict | None):
    if not documents:
        return lambda vector_id: scores.get(vector_id, missing)
    best: dict[object, float] = {}
    for vector_id, score in scores.items():
        document = documents.get(vector_id)
        if document is not None and score > best.get(document, float("-inf")):
            best[document] = score

    def lookup(vector_id: int) -> float:
        score = scores.get(vector_id)
        if score is not None:
            return score
        return best.get(documents.get(vector_id), missing)

    return lookup


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
    mean = statistics.fmean(values)
    spread = statistics.pstdev(values) if len(values) > 1 else 0.0
    spread = spread or 1.0
    scores = {vector_id: (s - mean) / spread for vector_id, s in hits}
    return scores, min(scores.values())
