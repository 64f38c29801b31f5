"""One voice call: an AgentSession with the voice agent, whose every user and
agent utterance lands in the conversation as it happens.

Transport-neutral: `start(room=...)` for a LiveKit room, or set
`session.input.audio` / `session.output.audio` to any AudioInput/AudioOutput
first (a WebSocket, a phone media stream), or neither for text (the tests).

Per user turn (`on_user_turn_completed`, and for typed input in the LLM
node): the user message is stored, the knowledge base searched under a strict
budget (skipped and counted when over it) and the passages given to the model
for that turn only; the reply is stored when it has been spoken — cut to what
was actually heard when the caller spoke over it — with its latency figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from livekit import rtc
from livekit.agents import Agent, AgentSession, ModelSettings, StopResponse, llm
from livekit.agents.llm import function_tool
from livekit.agents.voice import events as lk_events

from agents_runtime import tools
from agents_runtime.llm import LLM
from agents_runtime.prompt import passage_block, voice_instructions
from agents_runtime.retrieval import Retrieval, Retriever
from agents_runtime.voice import models, speech
from agents_runtime.voice.hub_llm import PASSAGES, HubLLM, passages_message
from agents_runtime.voice.spoken import SpokenText, spoken
from hub import pricing
from hub.conversations import append_message, update_conversation
from hub.events import Event
from hub.services import Services
from hub.store import conversations

log = logging.getLogger(__name__)

RETRIEVAL_BUDGET = 0.4  # seconds: the caller is waiting in silence


@dataclass
class _Turn:
    """What one user turn produced, for the reply that answers it."""

    user_message_id: UUID | None
    user: llm.ChatMessage
    retrieval: Retrieval
    replied: bool = False
    tools: list[str] = field(default_factory=list)


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


class VoiceAgent(Agent):
    def __init__(self, call: VoiceCall) -> None:
        self.call = call
        super().__init__(
            instructions=voice_instructions(call.agent["system_prompt"]),
            tools=[_as_function_tool(call, name) for name in call.enabled_tools],
        )

    async def on_enter(self) -> None:
        if greeting := (self.call.agent.get("greeting") or "").strip():
            self.session.say(greeting, allow_interruptions=True)

    async def on_user_turn_completed(
        self, turn_ctx: llm.ChatContext, new_message: llm.ChatMessage
    ) -> None:
        if not await self.call.begin_turn(turn_ctx, new_message):
            raise StopResponse()

    async def llm_node(
        self, chat_ctx: llm.ChatContext, tools: list[llm.Tool], model_settings: ModelSettings
    ) -> AsyncIterable[llm.ChatChunk | str]:
        # Typed input (session.run, a room's text stream) skips
        # on_user_turn_completed; its turn begins here.
        user = next((m for m in reversed(chat_ctx.messages()) if m.role == "user"), None)
        if user is not None and not await self.call.begin_turn(chat_ctx, user):
            return
        cleaner = SpokenText()
        async for chunk in Agent.default.llm_node(self, chat_ctx, tools, model_settings):
            if isinstance(chunk, llm.ChatChunk) and chunk.delta and chunk.delta.content:
                chunk.delta.content = cleaner.feed(chunk.delta.content)
            elif isinstance(chunk, str):
                chunk = cleaner.feed(chunk)
            yield chunk
        if tail := cleaner.flush():
            yield tail


def _as_function_tool(call: VoiceCall, name: str) -> llm.Tool:
    """A chat tool (agents_runtime.tools) as a livekit function tool: the same
    code runs, records itself in the transcript, and ends or hands off the call."""
    tool = tools.TOOLS[name]

    async def run(raw_arguments: dict[str, object]) -> str:
        # JSON, as a chat turn feeds a result back (livekit would send str(dict)).
        return json.dumps(await call.run_tool(tool, raw_arguments), default=str)

    return function_tool(
        run,
        raw_schema={
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        },
    )


class VoiceCall:
    def __init__(
        self,
        services: Services,
        client: LLM,
        agent: dict[str, Any],
        conversation: dict[str, Any],
        *,
        stt=None,
        tts=None,
        vad=None,
        retrieval_budget: float = RETRIEVAL_BUDGET,
        on_end: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.services = services
        self.agent = agent
        self.company_id: UUID = agent["company_id"]
        self.conversation_id: UUID = conversation["id"]
        self.channel: str = conversation["channel"]
        self.enabled_tools = [n for n in agent.get("tools") or [] if n in tools.TOOLS]
        self.retriever = Retriever(services, budget=retrieval_budget, channel="voice")
        self.llm = HubLLM(
            client,
            model=agent["model"],
            temperature=agent["temperature"],
            max_tokens=agent["max_tokens"],
        )
        options: dict[str, Any] = {
            "llm": self.llm,
            "vad": vad,
            "turn_handling": {
                "turn_detection": "vad" if vad is not None else None,
                # The VAD's silence ends the turn; livekit waits no longer on top of it.
                "endpointing": {"min_delay": models.END_OF_TURN_SILENCE},
                # The reply waits for this turn's passages: a preemptive one would be thrown away.
                "preemptive_generation": {"enabled": False},
                "interruption": {"mode": "vad"},
            },
        }
        if stt is not None:
            options["stt"] = stt
        if tts is not None:
            options["tts"] = tts
        self.session = AgentSession(**options)
        self.voice_agent = VoiceAgent(self)
        self.on_end = on_end
        self.started = time.monotonic()
        self._turns: dict[str, _Turn] = {}  # by the user ChatMessage's id
        self._turn: _Turn | None = None
        self._writes = asyncio.Lock()  # keeps stored messages in the order they happened
        self._tasks: set[asyncio.Task] = set()
        self._ended = asyncio.Event()
        self._finishing = False
        self._end_by = "visitor"
        # Why the call ended, when the transport knows better than livekit's
        # close event (an idle socket, a malformed frame).
        self.end_reason: str | None = None
        self._usage = [0, 0]  # prompt, completion tokens since the last stored reply

    @classmethod
    def speaking(
        cls,
        services: Services,
        client: LLM,
        agent: dict[str, Any],
        conversation: dict[str, Any],
        *,
        on_end: Callable[[], Awaitable[None]] | None = None,
    ) -> VoiceCall:
        """A call that hears and speaks: the STT and TTS the agent's voice
        settings choose (the offline models by default), and the VAD."""
        settings = services.settings
        chosen = speech.choose(agent["voice_settings"] or {}, settings)
        return cls(
            services,
            client,
            agent,
            conversation,
            stt=speech.build_stt(chosen, settings, phone=conversation["channel"] == "phone"),
            tts=speech.build_tts(chosen, settings),
            vad=models.silero_vad(),
            on_end=on_end,
        )

    # -- lifecycle ------------------------------------------------------------

    async def start(self, *, room: rtc.Room | None = None, **options: Any) -> None:
        self.session.on("conversation_item_added", self._on_item)
        self.session.on("agent_state_changed", self._on_state)
        self.session.on("close", self._on_close)
        self.llm.on("metrics_collected", self._on_llm_metrics)
        self.services.events.subscribe(self._on_event)
        self.started = time.monotonic()
        if room is not None:
            options["room"] = room
        await self.session.start(self.voice_agent, **options)

    async def wait_ended(self) -> None:
        await self._ended.wait()

    async def abandon(self) -> None:
        """End a call whose session did not start: livekit sends no close
        event then, and the conversation must end and nothing stay subscribed."""
        if not self._ended.is_set():
            await self._finish(None)

    def hang_up(self, by: str) -> None:
        """End the call after what is being said has been said."""
        self._end_by = by
        self.session.shutdown(drain=True)

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_close(self, event: lk_events.CloseEvent) -> None:
        self._spawn(self._finish(event))

    async def _finish(self, event: lk_events.CloseEvent | None) -> None:
        """The call is over: the conversation ends, with the call's duration."""
        if self._finishing:  # livekit's close after abandon(), or the other way round
            return
        self._finishing = True
        self.services.events.unsubscribe(self._on_event)
        pending = [t for t in self._tasks if t is not asyncio.current_task()]
        await asyncio.gather(*pending, return_exceptions=True)
        duration = round(time.monotonic() - self.started, 1)
        db = self.services.db
        try:
            async with db.tenant(self.company_id) as conn:
                current = await conversations.get(conn, self.conversation_id)
                if current is not None:
                    # The agent's end_conversation tool may have ended it already.
                    fields: dict[str, Any] = {
                        "metadata": {
                            **current["metadata"],
                            "call_duration_seconds": duration,
                            "call_end_reason": self.end_reason
                            or (event.reason.value if event and event.reason else None),
                        }
                    }
                    if current["status"] == "active":
                        fields["status"] = "ended"
                    await update_conversation(
                        db,
                        conn,
                        company_id=self.company_id,
                        conversation_id=self.conversation_id,
                        fields=fields,
                        by=self._end_by,
                    )
            await self._typing(False)
        finally:
            self._ended.set()
            if self.on_end is not None:
                await self.on_end()

    # -- turns ----------------------------------------------------------------

    async def begin_turn(self, ctx: llm.ChatContext, user: llm.ChatMessage) -> bool:
        """Store the user's words, retrieve, give the model this turn's passages.
        False when the AI must stay silent (a person took over, or it ended)."""
        turn = self._turns.get(user.id)
        if turn is None:
            text = (user.text_content or "").strip()
            # Shielded: an interruption (the caller again, a takeover) may cancel
            # the reply, but what the caller said is kept.
            stored, retrieval = await asyncio.shield(
                asyncio.gather(
                    self._store_user(text),
                    self.retriever.retrieve(self.company_id, self.agent["id"], text),
                )
            )
            turn = self._turns[user.id] = _Turn(stored, user, retrieval)
            self._turn = turn
        if turn.user_message_id is None:
            return False
        index = ctx.index_by_id(user.id)
        after = ctx.items[index:] if index is not None else []
        if not any(m.type == "message" and PASSAGES in m.extra for m in after):
            passages = turn.retrieval.passages
            ctx.insert(passages_message(passage_block(passages), passages))
        return True

    async def _store_user(self, text: str) -> UUID | None:
        """The user message's id; None when the AI is not to answer it."""
        db = self.services.db
        async with self._writes, db.tenant(self.company_id) as conn:
            state = await conversations.for_turn(conn, self.conversation_id)
            if state is None or state["status"] != "active":
                return None
            message, _ = await append_message(
                db,
                conn,
                company_id=self.company_id,
                conversation_id=self.conversation_id,
                sender_type="user",
                content=text,
                metadata={"channel": self.channel},
            )
            return None if state["ai_paused"] else message["id"]

    async def run_tool(self, tool: tools.Tool, arguments: dict[str, object]) -> dict[str, Any]:
        context = tools.ToolContext(
            self.services, self.company_id, self.conversation_id, self.agent["id"]
        )
        raw = json.dumps(arguments)
        turn = self._turn
        async with self._writes:
            result = await tools.run_and_record(
                context,
                tool.name,
                raw,
                self.enabled_tools,
                for_message=turn.user_message_id if turn else None,
                slot=f"voice.{len(turn.tools) if turn else 0}",
            )
        if turn is not None:
            turn.tools.append(tool.name)
        if tool.name == "end_conversation" and "error" not in result:
            # The conversation is ended (by the agent); the call follows once the goodbye is said.
            self._spawn(self._hang_up_after_goodbye())
        return result

    async def _hang_up_after_goodbye(self) -> None:
        await asyncio.sleep(0)  # let the tool's result reach the model first
        self.hang_up("agent")

    def _on_llm_metrics(self, metrics) -> None:
        self._usage[0] += getattr(metrics, "prompt_tokens", 0) or 0
        self._usage[1] += getattr(metrics, "completion_tokens", 0) or 0

    def _on_item(self, event: lk_events.ConversationItemAddedEvent) -> None:
        item = event.item
        if isinstance(item, llm.ChatMessage) and item.role == "assistant":
            self._spawn(self._store_reply(item))

    async def _store_reply(self, item: llm.ChatMessage) -> None:
        text = spoken(item.text_content or "")
        if not text:
            return
        turn = self._turn
        answers = turn is not None and not turn.replied and turn.user_message_id is not None
        prompt_tokens, completion_tokens = self._usage
        self._usage = [0, 0]
        user_metrics = turn.user.metrics if answers and turn else {}
        metrics = item.metrics
        metadata: dict[str, Any] = {
            **pricing.usage(self.llm.model, prompt_tokens, completion_tokens),
            "channel": self.channel,
            "interrupted": item.interrupted,
            # Seconds in livekit's reports, milliseconds here as in chat turns.
            "latency": {
                "transcript_ms": _ms(user_metrics.get("transcription_delay")),
                "end_of_turn_ms": _ms(user_metrics.get("end_of_turn_delay")),
                "first_token_ms": _ms(metrics.get("llm_node_ttft")),
                "first_audio_ms": _ms(metrics.get("tts_node_ttfb")),
                "total_ms": _ms(metrics.get("e2e_latency")),
            },
        }
        if answers and turn is not None:
            turn.replied = True
            metadata["retrieval_ms"] = turn.retrieval.ms
            metadata["sources"] = turn.retrieval.sources()
            if turn.retrieval.skipped:
                metadata["retrieval_skipped"] = True
            if turn.tools:
                metadata["tools"] = list(turn.tools)
        db = self.services.db
        async with self._writes, db.tenant(self.company_id) as conn:
            await append_message(
                db,
                conn,
                company_id=self.company_id,
                conversation_id=self.conversation_id,
                sender_type="agent",
                sender_id=self.agent["id"],
                content=text,
                ai_metadata=metadata,
                reply_to=turn.user_message_id if answers and turn else None,
            )

    # -- the rest of the hub ----------------------------------------------------

    def _on_state(self, event: lk_events.AgentStateChangedEvent) -> None:
        if "thinking" in (event.old_state, event.new_state):
            self._spawn(self._typing(event.new_state == "thinking"))

    async def _typing(self, typing: bool) -> None:
        await self.services.events.publish(
            Event(
                "agent.typing",
                self.company_id,
                {"conversation_id": self.conversation_id, "typing": typing},
            )
        )

    async def _on_event(self, event: Event) -> None:
        """Staff took over (the agent stops talking) or ended the conversation
        (the call ends)."""
        data = event.data
        if str(data.get("conversation_id", data.get("id"))) != str(self.conversation_id):
            return
        if event.type == "conversation.takeover":
            with contextlib.suppress(RuntimeError):
                self.session.interrupt()
        elif event.type == "conversation.ended" and data.get("by") not in ("agent", "visitor"):
            self.hang_up(data.get("by") or "staff")
