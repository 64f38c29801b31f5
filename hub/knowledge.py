"""What the hub knows of the knowledge base: the interface of the service
that `agents_runtime` implements and `hub.app` puts in Services, so REST and
chat turns search through the same function."""

from __future__ import annotations

from typing import Any, Literal, Protocol
from uuid import UUID

SearchMode = Literal["vector", "keyword", "hybrid"]


class KnowledgeService(Protocol):
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
        """Results in the seed's shape: document_id, chunk_id, content, score,
        metadata {source, page, heading}; best first. `score` is 0-1 in every
        mode, and none below `threshold` is returned (docs/knowledge.md)."""

    def wake(self) -> None:
        """A document is waiting to be processed."""

    async def apply_change(self, company_id: UUID, change: dict[str, Any]) -> None:
        """The company's chunks changed ({"removed": [vector ids], "added": [...]}):
        bring what is cached up to date."""

    async def add_text(
        self,
        company_id: UUID,
        *,
        title: str,
        filename: str,
        text: str,
        agent_id: UUID | None = None,
    ) -> dict[str, Any]:
        """Queue a text document, as an upload would."""
