"""The rolling summary of a long conversation, refreshed in the background.

Messages that fall out of a turn's recent window reach the model as this
summary instead. With a model configured it writes the summary; offline, the
summary is the customer's own earlier messages, shortened.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from uuid import UUID

from agents_runtime.llm import LLM, ChatRequest, Completion, OfflineResponder, complete
from hub.services import Services
from hub.store import conversations, messages
from hub.store import usage as model_usage

log = logging.getLogger(__name__)

MAX_CHARS = 1500
INSTRUCTIONS = (
    "Summarise this customer conversation in at most 120 words for the agent who continues "
    "it. Keep names, contact details, order numbers, what the customer wants and what was "
    "already promised. Write plain sentences."
)


class Summarizer:
    def __init__(self, services: Services, llm: LLM) -> None:
        self.services = services
        self.llm = llm
        self._tasks: set[asyncio.Task] = set()

    async def maybe_refresh(
        self, company_id: UUID, conversation: dict[str, Any], settings, agent: dict[str, Any]
    ) -> None:
        """Refresh the summary in the background once enough messages fell out
        of the window. `conversation`: its `id`, `summary`, `summary_seq` and
        `last_seq` as the turn just left them (a refresh another process
        finished meanwhile makes this one lose set_summary's check, no more)."""
        conversation_id = conversation["id"]
        upto = conversation["last_seq"] - settings.window
        if upto - conversation["summary_seq"] < settings.summary_every:
            return
        task = asyncio.create_task(
            self.refresh(
                company_id,
                conversation_id,
                conversation["summary"],
                conversation["summary_seq"],
                upto,
                agent,
            )
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for refreshes in flight (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def refresh(
        self,
        company_id: UUID,
        conversation_id: UUID,
        previous: str | None,
        previous_seq: int,
        upto: int,
        agent: dict[str, Any],
    ) -> None:
        try:
            async with self.services.db.tenant(company_id) as conn:
                older = await messages.window(
                    conn,
                    conversation_id,
                    after_seq=previous_seq,
                    up_to_seq=upto,
                    limit=upto - previous_seq,
                )
            summary, usage = await self._write(previous, older, agent["model"])
            async with self.services.db.tenant(company_id) as conn:
                await conversations.set_summary(conn, conversation_id, summary, upto, previous_seq)
                if usage is not None:  # the tokens count in cost analytics like a reply's
                    await model_usage.record(
                        conn,
                        company_id=company_id,
                        agent_id=agent["id"],
                        conversation_id=conversation_id,
                        purpose="summary",
                        model=agent["model"],
                        prompt_tokens=usage.prompt_tokens,
                        completion_tokens=usage.completion_tokens,
                    )
        except Exception:
            # A summary is an optimisation: the next turn will try again.
            log.exception('{"event":"summary_failed","conversation_id":"%s"}', conversation_id)

    async def _write(
        self, previous: str | None, older: list[dict[str, Any]], model: str
    ) -> tuple[str, Completion | None]:
        """The new summary, and the model's completion (its usage) if one wrote it."""
        if isinstance(self.llm, OfflineResponder):
            said = [m["content"].strip()[:160] for m in older if m["sender_type"] == "user"]
            text = " ".join(filter(None, [previous, *(f"Customer: {s}" for s in said)]))
            return text[-MAX_CHARS:], None
        transcript = "\n".join(f"{m['sender_type']}: {m['content']}" for m in older if m["content"])
        request = ChatRequest(
            model=model,
            messages=[
                {"role": "system", "content": INSTRUCTIONS},
                {
                    "role": "user",
                    "content": (f"Summary so far: {previous}\n\n" if previous else "")
                    + f"Conversation:\n{transcript}",
                },
            ],
            temperature=0,
            max_tokens=300,
        )
        completion = await complete(self.llm, request)
        text = completion.text if completion is not None else ""
        return text.strip()[:MAX_CHARS], completion
