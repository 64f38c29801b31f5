"""LLM clients behind one small interface.

`stream(request)` yields text deltas (str) as they arrive and, last, one
`Completion` with the whole text, any tool calls and the token usage. Two
implementations: any OpenAI-compatible endpoint through the `openai` package,
and the offline responder that answers from the retrieved passages.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import httpx2
import openai

from agents_runtime.chat_stream import ChatStream, StreamError
from agents_runtime.handoff_intent import asks_for_a_person
from hub.pricing import OFFLINE_RESPONDER

log = logging.getLogger(__name__)


@dataclass
class Passage:
    """A retrieved knowledge-base chunk, numbered [n] in the prompt."""

    document_id: str
    chunk_id: str
    content: str
    score: float
    source: str | None = None
    page: int | None = None


@dataclass
class ChatRequest:
    model: str
    messages: list[dict[str, Any]]
    temperature: float
    max_tokens: int
    tools: list[dict[str, Any]] | None = None
    passages: list[Passage] = field(default_factory=list)
    question: str = ""  # the user message being answered, for the offline responder


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as the model wrote it


@dataclass
class Completion:
    model: str
    text: str
    tool_calls: list[ToolCall]
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None = None


async def complete(llm: LLM, request: ChatRequest) -> Completion | None:
    """The whole answer, for a caller with no use for tokens as they come:
    the stream's closing Completion (None if the stream ends without one)."""
    completion = None
    async for item in llm.stream(request):
        if isinstance(item, Completion):
            completion = item
    return completion


class LLMError(Exception):
    """The model could not give an answer; the message says why, for the record."""


class LLM(Protocol):
    # The one model this client always answers with (the offline responder),
    # or None when it runs whichever model the request names (an endpoint).
    model: str | None

    def stream(self, request: ChatRequest) -> AsyncIterator[str | Completion]: ...

    async def aclose(self) -> None:
        """Let go of connections, once nothing streams any more."""


def recorded_model(llm: LLM, configured: str) -> str:
    """The model a reply is recorded, priced and counted in analytics as, chat
    and voice alike: the client's own when it has one (the offline responder,
    whatever model the agent is configured with: no provider was called),
    else the agent's configured model. OpenAI answers "gpt-4o-mini" as
    "gpt-4o-mini-2024-07-18", which no exact price list can know, and guessing
    the base of a name could price one model as another; the reply's
    `served_model` keeps what the endpoint said answered."""
    return getattr(llm, "model", None) or configured


_RETRYABLE = (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError)


def _timed_out(exc: openai.APITimeoutError) -> bool:
    """Whether the model really took too long. The aiohttp transport reports
    every lost connection as a timeout (a refused connect, a server that
    hung up before answering): those are an unavailable model, retried."""
    cause = exc.__cause__
    while cause is not None and not isinstance(cause, aiohttp.ClientError):
        cause = cause.__cause__
    return cause is None or isinstance(cause, TimeoutError)


class OpenAIChat:
    """Chat Completions over HTTP: OpenAI, Azure, vLLM, Ollama, LiteLLM."""

    model = None  # whichever the request names

    def __init__(
        self,
        api_key: str,
        base_url: str | None = None,
        *,
        timeout: float = 60.0,
        attempts: int = 3,
        backoff: float = 0.5,
    ) -> None:
        # The client's own retries are off: we retry only before the first
        # token, where a retry cannot duplicate text the user has seen.
        self.client = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            max_retries=0,
            timeout=openai.Timeout(timeout, connect=min(timeout, 10.0)),
            # The `openai` client over aiohttp, whose C parser reads the
            # streamed body: httpx2's pure-Python one took 8 ms of CPU for a
            # 40-token reply, this one 3.6 (docs/performance.md, CPU per turn).
            http_client=openai.DefaultAioHttpClient(),
        )
        self.attempts = attempts
        self.backoff = backoff

    async def _open(self, request: ChatRequest) -> httpx2.Response:
        """The streaming response, its status checked: the `openai` client
        sends it (auth, timeouts, its error types), but the body is returned
        unread, for ChatStream to parse (agents_runtime.chat_stream says why)."""
        body: dict[str, Any] = {
            "model": request.model,
            "messages": request.messages,
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.tools:
            body["tools"] = request.tools
        for attempt in range(1, self.attempts + 1):
            try:
                return await self.client.post(
                    "/chat/completions", cast_to=httpx2.Response, body=body, stream=True
                )
            except openai.APITimeoutError as exc:
                if _timed_out(exc):
                    # Not retried: the caller's wait is already as long as it should be.
                    raise LLMError("model timed out") from exc
                if attempt == self.attempts:
                    raise LLMError(f"model unavailable after {attempt} attempts: {exc}") from exc
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
            except _RETRYABLE as exc:
                if attempt == self.attempts:
                    raise LLMError(f"model unavailable after {attempt} attempts: {exc}") from exc
                await asyncio.sleep(_retry_after(exc) or self.backoff * 2 ** (attempt - 1))
            except openai.APIStatusError as exc:
                raise LLMError(f"model refused the request ({exc.status_code}): {exc}") from exc
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        await self.client.close()

    async def stream(self, request: ChatRequest) -> AsyncIterator[str | Completion]:
        response = await self._open(request)
        parsed = ChatStream(request.model)
        try:
            # Read to the end, past `[DONE]`, so the connection goes back to the pool.
            async for data in response.aiter_bytes():
                for delta in parsed.feed(data):
                    yield delta
            for delta in parsed.end():
                yield delta
        except (StreamError, httpx2.HTTPError) as exc:
            raise LLMError(f"the model's stream broke off: {exc}") from exc
        except ValueError as exc:  # a chunk that is not JSON
            raise LLMError(f"the model sent malformed output: {exc}") from exc
        finally:
            await response.aclose()
        yield Completion(
            model=parsed.model,
            text="".join(parsed.text),
            tool_calls=[
                ToolCall(call["id"], call["name"], call["arguments"])
                for _, call in sorted(parsed.calls.items())
            ],
            prompt_tokens=parsed.prompt_tokens,
            completion_tokens=parsed.completion_tokens,
            finish_reason=parsed.finish_reason,
        )


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    try:
        value = float(response.headers.get("retry-after")) if response is not None else None
    except (TypeError, ValueError):
        return None
    return min(value, 10.0) if value is not None else None


_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "how",
        "i",
        "if",
        "in",
        "is",
        "it",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "that",
        "the",
        "this",
        "to",
        "us",
        "was",
        "we",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
    ]
)

NOTHING_FOUND = (
    "I couldn't find anything about that in our knowledge base, so I won't guess. "
    "Would you like me to connect you with a person from our team?"
)


HANDOFF_TOOL = "handoff_to_human"  # agents_runtime.tools, by the name a model calls it
HANDOFF_REASON = "The visitor asked for a person."
HANDED_OFF = "I've asked a person from our team to take over. They will reply here."
HANDOFF_FAILED = "I couldn't reach a person from our team just now. Please ask again in a moment."
NO_HANDOFF = "I can't hand this chat to a person myself, but I can answer from our knowledge base."


class OfflineResponder:
    """Answers without a model: it quotes the sentences of the retrieved
    passages that best match the question, each with its [n] citation, and
    when nothing relevant was retrieved it says so and offers a person. It
    never writes a claim that is not in the knowledge base.

    When the visitor clearly asks for a person (agents_runtime.handoff_intent)
    and the agent has the handoff tool, it calls that tool as a model would —
    the caller runs and records it (chat turn or voice call alike) — and,
    given the tool's result, says a short last word.

    It is its own model (`OFFLINE_RESPONDER`, priced at zero) and reports no
    tokens: it runs no tokenizer and no provider counts any."""

    model = OFFLINE_RESPONDER

    def __init__(self, max_quotes: int = 3) -> None:
        self.max_quotes = max_quotes

    def answer(self, request: ChatRequest) -> str:
        if not request.passages:
            return NOTHING_FOUND
        question = {w for w in _WORD.findall(request.question.lower()) if w not in _STOPWORDS}
        scored = []
        for number, passage in enumerate(request.passages, start=1):
            for order, sentence in enumerate(_SENTENCE.split(passage.content.strip())):
                words = set(_WORD.findall(sentence.lower()))
                overlap = len(question & words)
                if sentence.strip():
                    # Rank by shared words, then passage rank, then position.
                    scored.append((-overlap, number, order, sentence.strip()))
        scored.sort()
        best = [s for s in scored if s[0] < 0][: self.max_quotes] or scored[:1]
        best.sort(key=lambda s: (s[1], s[2]))
        quotes = " ".join(f"{sentence} [{number}]" for _, number, _, sentence in best)
        return f"Here is what our knowledge base says: {quotes}"

    def _handoff(self, request: ChatRequest) -> tuple[str, list[ToolCall]] | None:
        """The handoff's part of this round, None when the visitor did not ask for one."""
        last = request.messages[-1] if request.messages else {}
        if last.get("role") == "tool":  # the tool ran: its result decides the last word
            return (HANDED_OFF if _handed_off(last.get("content")) else HANDOFF_FAILED), []
        if not asks_for_a_person(request.question):
            return None
        offered = {(t.get("function") or {}).get("name") for t in request.tools or []}
        if HANDOFF_TOOL not in offered:
            return NO_HANDOFF, []
        call = ToolCall("offline_handoff", HANDOFF_TOOL, json.dumps({"reason": HANDOFF_REASON}))
        return "", [call]

    async def aclose(self) -> None:
        pass  # nothing held

    async def stream(self, request: ChatRequest) -> AsyncIterator[str | Completion]:
        handoff = self._handoff(request)
        text, calls = handoff if handoff is not None else (self.answer(request), [])
        pieces = re.findall(r"\S+\s*", text)
        for i in range(0, len(pieces), 3):
            yield "".join(pieces[i : i + 3])
            await asyncio.sleep(0)  # let the deltas go out as a model's would
        yield Completion(
            model=self.model,
            text=text,
            tool_calls=calls,
            prompt_tokens=0,
            completion_tokens=0,
            finish_reason="tool_calls" if calls else "stop",
        )


def _handed_off(result: Any) -> bool:
    """The handoff tool's result, as the chat turn (JSON) or livekit (text) passes it."""
    try:
        value = json.loads(result) if isinstance(result, str) else result
    except ValueError:
        return False
    return isinstance(value, dict) and value.get("handed_off") is True
