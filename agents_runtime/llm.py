"""LLM clients behind one small interface.

`stream(request)` yields text deltas (str) as they arrive and, last, one
`Completion` with the whole text, any tool calls and the token usage. Two
implementations: any OpenAI-compatible endpoint through the `openai` package,
and the offline responder that answers from the retrieved passages.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import openai

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
    def stream(self, request: ChatRequest) -> AsyncIterator[str | Completion]: ...


_RETRYABLE = (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError)


class OpenAIChat:
    """Chat Completions over HTTP: OpenAI, Azure, vLLM, Ollama, LiteLLM."""

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
        )
        self.attempts = attempts
        self.backoff = backoff

    async def _open(self, request: ChatRequest):
        options: dict[str, Any] = {}
        if request.tools:
            options["tools"] = request.tools
        for attempt in range(1, self.attempts + 1):
            try:
                return await self.client.chat.completions.create(
                    model=request.model,
                    messages=request.messages,
                    temperature=request.temperature,
                    max_tokens=request.max_tokens,
                    stream=True,
                    stream_options={"include_usage": True},
                    **options,
                )
            except openai.APITimeoutError as exc:
                # Not retried: the caller's wait is already as long as it should be.
                raise LLMError("model timed out") from exc
            except _RETRYABLE as exc:
                if attempt == self.attempts:
                    raise LLMError(f"model unavailable after {attempt} attempts: {exc}") from exc
                await asyncio.sleep(_retry_after(exc) or self.backoff * 2 ** (attempt - 1))
            except openai.APIStatusError as exc:
                raise LLMError(f"model refused the request ({exc.status_code}): {exc}") from exc
        raise AssertionError("unreachable")

    async def stream(self, request: ChatRequest) -> AsyncIterator[str | Completion]:
        stream = await self._open(request)
        text: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        usage = None
        finish = None
        model = request.model
        try:
            async for chunk in stream:
                model = chunk.model or model
                if chunk.usage is not None:
                    usage = chunk.usage
                for choice in chunk.choices:
                    finish = choice.finish_reason or finish
                    delta = choice.delta
                    if delta is None:
                        continue
                    if delta.content:
                        text.append(delta.content)
                        yield delta.content
                    for call in delta.tool_calls or []:
                        slot = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                        slot["id"] = call.id or slot["id"]
                        if call.function is not None:
                            slot["name"] += call.function.name or ""
                            slot["arguments"] += call.function.arguments or ""
        except openai.APIError as exc:
            raise LLMError(f"the model's stream broke off: {exc}") from exc
        except ValueError as exc:  # a chunk that is not JSON
            raise LLMError(f"the model sent malformed output: {exc}") from exc
        finally:
            await stream.close()
        whole = "".join(text)
        yield Completion(
            model=model,
            text=whole,
            tool_calls=[
                ToolCall(c["id"], c["name"], c["arguments"]) for _, c in sorted(calls.items())
            ],
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            finish_reason=finish,
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


class OfflineResponder:
    """Answers without a model: it quotes the sentences of the retrieved
    passages that best match the question, each with its [n] citation, and
    when nothing relevant was retrieved it says so and offers a person. It
    never writes a claim that is not in the knowledge base."""

    model = "offline"

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

    async def stream(self, request: ChatRequest) -> AsyncIterator[str | Completion]:
        text = self.answer(request)
        pieces = re.findall(r"\S+\s*", text)
        for i in range(0, len(pieces), 3):
            yield "".join(pieces[i : i + 3])
            await asyncio.sleep(0)  # let the deltas go out as a model's would
        yield Completion(
            model=self.model,
            text=text,
            tool_calls=[],
            # No tokenizer is run offline; the usual four characters per token.
            prompt_tokens=sum(len(str(m.get("content") or "")) for m in request.messages) // 4,
            completion_tokens=len(text) // 4,
            finish_reason="stop",
        )
