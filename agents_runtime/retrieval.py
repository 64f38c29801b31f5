"""Knowledge-base retrieval for a turn, chat or voice: scoped to the company
and the agent, under a time budget. Over budget, the turn goes on without
passages and the skip is counted (the `retrieval_skipped_total` metric and the
reply's `ai_metadata`), because a late answer costs more than an ungrounded
start — above all on a call, where silence is heard."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from uuid import UUID

from agents_runtime.llm import Passage
from hub.services import Services

log = logging.getLogger(__name__)


@dataclass
class Retrieval:
    passages: list[Passage] = field(default_factory=list)
    ms: int | None = None  # None when nothing was searched, or the search was skipped
    skipped: bool = False  # over budget

    def sources(self) -> list[dict]:
        """What the reply's `ai_metadata.sources` records of its passages."""
        return [
            {
                "document_id": p.document_id,
                "chunk_id": p.chunk_id,
                "page": p.page,
                "source": p.source,
            }
            for p in self.passages
        ]


class Retriever:
    def __init__(
        self,
        services: Services,
        *,
        limit: int = 5,
        # The lowest hybrid score (0-1, the mean of the cosine and the keyword
        # share: docs/knowledge.md) a passage needs to ground a reply. A passage
        # answering the question scores about 0.35-0.6 when it shares its words
        # (the demo's, MiniLM), a paraphrase sharing none about half its cosine
        # ("How do I get my money back?" against a refund policy: 0.44 / 2);
        # unrelated text stays near 0.1.
        threshold: float | None = 0.2,
        budget: float = 1.5,
        channel: str = "chat",
    ) -> None:
        self.services = services
        self.limit, self.threshold, self.budget = limit, threshold, budget
        self.channel = channel
        self.skipped = 0

    async def retrieve(self, company_id: UUID, agent_id: UUID, query: str) -> Retrieval:
        knowledge = self.services.knowledge
        if not query.strip():
            return Retrieval()
        started = time.perf_counter()
        try:
            results = await asyncio.wait_for(
                knowledge.search(
                    company_id, query, limit=self.limit, threshold=self.threshold, agent_id=agent_id
                ),
                timeout=self.budget,
            )
        except TimeoutError:
            self.skipped += 1
            self.services.metrics.retrieval_skipped.labels(self.channel).inc()
            log.warning(
                '{"event":"retrieval_over_budget","company_id":"%s","channel":"%s"}',
                company_id,
                self.channel,
            )
            return Retrieval(skipped=True)
        passages = [
            Passage(
                document_id=str(r["document_id"]),
                chunk_id=str(r["chunk_id"]),
                content=r["content"],
                score=float(r["score"]),
                source=(r.get("metadata") or {}).get("source"),
                page=(r.get("metadata") or {}).get("page"),
            )
            for r in results
        ]
        return Retrieval(passages, round((time.perf_counter() - started) * 1000))
