"""An agent turn: from a stored user message to a stored, streamed reply.

retrieve (company- and agent-scoped, within a time budget) → prompt (system
prompt, numbered passages, rolling summary, recent window) → stream (deltas
published as they come, coalesced) → tools (run, recorded, fed back) → store
the reply with its ai_metadata → events. A turn is idempotent: the reply is
stored with `reply_to` = the user message, once, however often the job is
delivered; and a turn answers any earlier unanswered messages first, so
replies keep the conversation's order even when jobs arrive out of order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from agents_runtime import tools
from agents_runtime.llm import LLM, ChatRequest, Completion, LLMError, recorded_model
from agents_runtime.prompt import build_messages
from agents_runtime.retrieval import Retriever
from agents_runtime.summary import Summarizer
from hub import pricing
from hub.conversations import append_message, record_failed_turn
from hub.events import Event
from hub.jobs import Job
from hub.services import Services
from hub.store import agents, conversations, messages

log = logging.getLogger(__name__)

REPLY_IDS = UUID("5b0c52f4-52a3-4d5e-9a53-1d1f6c0b7a61")  # the namespace of reply ids


@dataclass
class TurnSettings:
    window: int = 12  # recent messages sent verbatim; older ones reach the model as a summary
    summary_every: int = 8  # refresh the summary once this many messages fell out of the window
    retrieval_limit: int = 5
    retrieval_threshold: float | None = 0.2  # see agents_runtime.retrieval
    retrieval_budget: float = 1.5  # seconds; over it the turn goes on without passages
    max_tool_rounds: int = 3
    # After the first token, which goes out at once, deltas are sent in batches
    # of about this size or this age. Each batch is one event that every web
    # process and every worker decodes (docs/performance.md, CPU per turn): at
    # 50 tokens/s, 0.1 s is 5 tokens a batch, 10 updates a second on screen.
    flush_chars: int = 48
    flush_seconds: float = 0.1


class _Deltas:
    """Coalesces token deltas into small batches so the emit rate stays bounded."""

    def __init__(self, runner: TurnRunner, company_id: UUID, conversation_id: UUID, reply_id: UUID):
        self.runner, self.company_id = runner, company_id
        self.conversation_id, self.reply_id = conversation_id, reply_id
        # This attempt at the reply: a turn taken over from a worker that died
        # streams the same reply again from the start, under a new attempt.
        self.attempt = uuid.uuid4().hex[:12]
        self.buffer: list[str] = []
        self.size = 0  # characters in the buffer
        self.index = 0
        self.last_flush = time.monotonic()

    async def add(self, delta: str) -> None:
        self.buffer.append(delta)
        self.size += len(delta)
        settings = self.runner.settings
        if (
            self.index == 0  # the first token: the visitor sees the reply begin at once
            or self.size >= settings.flush_chars
            or time.monotonic() - self.last_flush >= settings.flush_seconds
        ):
            await self.flush()

    async def flush(self) -> None:
        if not self.buffer:
            return
        text, self.buffer, self.size = "".join(self.buffer), [], 0
        self.last_flush = time.monotonic()
        await self.runner.services.events.publish(
            Event(
                "message.delta",
                self.company_id,
                {
                    "conversation_id": self.conversation_id,
                    "message_id": self.reply_id,
                    "delta": text,
                    "index": self.index,
                    "attempt": self.attempt,
                },
            )
        )
        self.index += 1


class TurnRunner:
    def __init__(self, services: Services, llm: LLM, settings: TurnSettings | None = None) -> None:
        self.services = services
        self.llm = llm
        self.settings = settings or TurnSettings()
        self.summarizer = Summarizer(services, llm)
        self.retriever = Retriever(
            services,
            limit=self.settings.retrieval_limit,
            threshold=self.settings.retrieval_threshold,
            budget=self.settings.retrieval_budget,
        )
        self._generating: dict[UUID, asyncio.Task] = {}
        services.events.subscribe(self._on_event)

    async def _on_event(self, event: Event) -> None:
        """A person took over or the conversation ended: stop the turn in flight."""
        if event.type in ("conversation.takeover", "conversation.ended"):
            conversation_id = event.data.get("conversation_id") or event.data.get("id")
            task = self._generating.get(UUID(str(conversation_id)))
            if task is not None and event.data.get("by") != "agent":
                task.cancel()

    async def handle(self, job: Job) -> None:
        company_id = UUID(job.company_id)
        conversation_id = UUID(job.payload["conversation_id"])
        # One read finds what is unanswered and loads what answering the first
        # of it (usually all of it) needs. A read, not a transaction: each
        # statement sees what is committed when it runs, and what they read
        # is bounded by the message's seq; BEGIN and COMMIT would be two more
        # round trips per turn.
        async with self.services.db.read(company_id) as conn:
            pending = await messages.unanswered(conn, conversation_id, job.payload["seq"])
            loaded = await self._load(conn, conversation_id, pending[0]) if pending else None
        for position, message in enumerate(pending):
            if position:
                async with self.services.db.read(company_id) as conn:
                    loaded = await self._load(conn, conversation_id, message)
            if loaded is None or not await self._answer(company_id, message, *loaded):
                break

    async def _load(
        self, conn: asyncpg.Connection, conversation_id: UUID, message: dict
    ) -> tuple[dict, dict, list[dict]] | None:
        """The conversation, its agent and the history a reply to `message`
        needs; None when the AI must stay silent."""
        conversation = await conversations.for_turn(conn, conversation_id)
        if conversation is None or conversation["status"] != "active":
            return None
        if conversation["ai_paused"] or conversation["agent_id"] is None:
            return None
        agent = await agents.get_enabled(conn, conversation["agent_id"])
        if agent is None:
            return None
        history = await messages.window(
            conn,
            conversation_id,
            after_seq=conversation["summary_seq"],
            up_to_seq=message["seq"],
            limit=self.settings.window * 2,
        )
        return conversation, agent, history

    async def _answer(
        self, company_id: UUID, message: dict, conversation: dict, agent: dict, history: list[dict]
    ) -> bool:
        """Reply to one user message; False when the turn was abandoned."""
        conversation_id = conversation["id"]
        await self._typing(company_id, conversation_id, True)
        try:
            generation = asyncio.create_task(
                self._generate(company_id, conversation, agent, message, history)
            )
            self._generating[conversation_id] = generation
            try:
                reply_seq = await asyncio.shield(generation)
            except asyncio.CancelledError:
                if not generation.done():
                    # We are cancelled ourselves (shutdown): the generation goes with us.
                    generation.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await generation
                    raise
                # A person took over or the conversation ended: abandoned, not failed.
                log.info('{"event":"turn_abandoned","conversation_id":"%s"}', conversation_id)
                return False
            finally:
                self._generating.pop(conversation_id, None)
        finally:
            await self._typing(company_id, conversation_id, False)
        if reply_seq is not None:
            # What the summary needs to know is known: no read of the conversation again.
            known = {**conversation, "last_seq": reply_seq}
            await self.summarizer.maybe_refresh(company_id, known, self.settings, agent)
        return True

    async def _generate(
        self,
        company_id: UUID,
        conversation: dict,
        agent: dict,
        message: dict,
        history: list[dict],
    ) -> int | None:
        """Stream and store the reply; its `seq`."""
        started = time.perf_counter()
        conversation_id = conversation["id"]
        retrieval = await self.retriever.retrieve(company_id, agent["id"], message["content"])
        passages = retrieval.passages
        enabled = list(agent.get("tools") or [])
        request = ChatRequest(
            model=agent["model"],
            messages=build_messages(
                system_prompt=agent["system_prompt"],
                passages=passages,
                summary=conversation["summary"],
                history=history,
            ),
            temperature=agent["temperature"],
            max_tokens=agent["max_tokens"],
            tools=tools.specs(enabled) or None,
            passages=passages,
            question=message["content"],
        )
        # One id for the reply to a message, whichever attempt stores it: the
        # deltas a visitor saw from a worker that died mid-stream belong to
        # the same bubble as the reply its successor stores (docs/realtime.md).
        reply_id = uuid.uuid5(REPLY_IDS, str(message["id"]))
        deltas = _Deltas(self, company_id, conversation_id, reply_id)
        context = tools.ToolContext(self.services, company_id, conversation_id, agent["id"])
        text: list[str] = []
        prompt_tokens = completion_tokens = 0
        first_token_ms = None
        served_model = None  # what the endpoint says answered, e.g. a dated snapshot
        tool_log: list[dict[str, Any]] = []

        for _round in range(self.settings.max_tool_rounds + 1):
            completion: Completion | None = None
            async for item in self.llm.stream(request):
                if isinstance(item, Completion):
                    completion = item
                    continue
                if first_token_ms is None:
                    first_token_ms = round((time.perf_counter() - started) * 1000)
                text.append(item)
                await deltas.add(item)
            if completion is None:
                raise LLMError("the model's stream ended without a result")
            served_model = completion.model or served_model
            prompt_tokens += completion.prompt_tokens
            completion_tokens += completion.completion_tokens
            if not completion.tool_calls:
                break
            request.messages.append(
                {
                    "role": "assistant",
                    "content": completion.text or None,
                    "tool_calls": [
                        {
                            "id": c.id,
                            "type": "function",
                            "function": {"name": c.name, "arguments": c.arguments},
                        }
                        for c in completion.tool_calls
                    ],
                }
            )
            for index, tool_call in enumerate(completion.tool_calls):
                result = await tools.run_and_record(
                    context,
                    tool_call.name,
                    tool_call.arguments,
                    enabled,
                    for_message=message["id"],
                    slot=f"{_round}.{index}",
                )
                tool_log.append({"name": tool_call.name, "result": result})
                request.messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": tool_call.id,
                        "content": json.dumps(result, default=str),
                    }
                )
            # After the last round the model answers without tools.
            if _round + 1 == self.settings.max_tool_rounds:
                request.tools = None
        await deltas.flush()

        reply = "".join(text).strip()
        if not reply:
            reply = "Done." if tool_log else "I'm not sure how to answer that."
        model = recorded_model(self.llm, agent["model"])
        metadata = {
            **pricing.usage(model, prompt_tokens, completion_tokens),
            "served_model": served_model or model,
            "first_token_ms": first_token_ms,
            "total_ms": round((time.perf_counter() - started) * 1000),
            "retrieval_ms": retrieval.ms,
            "sources": retrieval.sources(),
        }
        if retrieval.skipped:
            metadata["retrieval_skipped"] = True
        if tool_log:
            metadata["tools"] = [t["name"] for t in tool_log]
        db = self.services.db
        async with db.tenant(company_id) as conn:
            await messages.free_reply_slot(conn, conversation_id, message["id"])
            stored, _ = await append_message(
                db,
                conn,
                company_id=company_id,
                conversation_id=conversation_id,
                sender_type="agent",
                sender_id=agent["id"],
                content=reply,
                ai_metadata=metadata,
                reply_to=message["id"],
                id=reply_id,
            )
        return stored["seq"] if stored is not None else None  # None: the conversation is gone

    async def _typing(self, company_id: UUID, conversation_id: UUID, typing: bool) -> None:
        await self.services.events.publish(
            Event(
                "agent.typing",
                company_id,
                {"conversation_id": conversation_id, "typing": typing},
            )
        )

    async def dead_letter(self, job: Job, error: BaseException) -> None:
        """The turn failed for good: recorded where the visitor and staff see it."""
        company_id = UUID(job.company_id)
        conversation_id = UUID(job.payload["conversation_id"])
        await record_failed_turn(
            self.services.db,
            company_id=company_id,
            conversation_id=conversation_id,
            message_id=UUID(job.payload["message_id"]),
            cause=str(error) or type(error).__name__,
        )
        with contextlib.suppress(Exception):
            await self._typing(company_id, conversation_id, False)
