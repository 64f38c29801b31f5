"""A streamed Chat Completion read from its server-sent events, raw.

The `openai` package builds a pydantic model per streamed chunk (with the
choices, the delta and its tool calls inside) and decodes the events line by
line in Python; for a reply streamed in words that was the largest share of a
worker's CPU per turn (docs/performance.md). A turn needs only the text
deltas, the tool calls, the finish reason, the usage and the model's name, so
`ChatStream` takes the response body's bytes as they arrive, cuts them into
events itself and reads each `data:` with orjson into just those.

It knows the wire format and nothing else: agents_runtime.llm opens the
request with the `openai` client (auth, timeouts, status errors) and turns
what this raises into its LLMError.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson


class StreamError(Exception):
    """The provider reported an error inside the stream (after its 200)."""


class ChatStream:
    """One completion's stream: `feed(bytes)` yields the text deltas in them;
    after `end()`, the attributes hold the whole answer.

    Raises ValueError on a `data:` that is not a JSON object, StreamError on
    an `{"error": ...}` event, as the `openai` client does."""

    def __init__(self, model: str) -> None:
        self.model = model  # the endpoint's name for it once a chunk says
        self.text: list[str] = []
        self.calls: dict[int, dict[str, str]] = {}  # index -> id, name, arguments
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.finish_reason: str | None = None
        self.done = False  # `[DONE]` was read: what follows is not ours
        self._partial = b""  # the start of a line the next bytes finish
        self._data: list[bytes] = []  # the `data:` lines of the event being read

    def feed(self, chunk: bytes) -> Iterator[str]:
        """The text deltas in `chunk`, each as soon as its event is read: the
        deltas before a bad event come out before what it raises, wherever
        the network cut the body into chunks."""
        if self.done:
            return
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()  # b"" when the chunk ended a line
        deltas: list[str] = []
        for line in lines:
            self._line(line.rstrip(b"\r"), deltas)
            if deltas:
                yield from deltas
                deltas.clear()
            if self.done:
                break

    def end(self) -> list[str]:
        """The body ended: an event not closed by a blank line still counts
        (as the openai client reads it)."""
        deltas: list[str] = []
        if not self.done:
            if self._partial:
                self._line(self._partial.rstrip(b"\r"), deltas)
                self._partial = b""
            self._line(b"", deltas)
        return deltas

    def _line(self, line: bytes, deltas: list[str]) -> None:
        if not line:  # a blank line ends an event
            if self._data:
                data, self._data = b"\n".join(self._data), []
                self._event(data, deltas)
        elif line.startswith(b"data:"):
            value = line[5:]
            self._data.append(value[1:] if value.startswith(b" ") else value)
        # Anything else is a comment (": keep-alive") or a field a chat
        # completion does not use (event:, id:, retry:).

    def _event(self, data: bytes, deltas: list[str]) -> None:
        if data.startswith(b"[DONE]"):
            self.done = True
            return
        chunk = orjson.loads(data)  # orjson.JSONDecodeError is a ValueError
        if not isinstance(chunk, dict):
            raise ValueError(f"a chunk that is not an object: {data[:80]!r}")
        error = chunk.get("error")
        if error:
            message = error.get("message") if isinstance(error, dict) else None
            raise StreamError(message if isinstance(message, str) and message else str(error))
        self.model = chunk.get("model") or self.model
        usage = chunk.get("usage")
        if usage:
            self.prompt_tokens = usage.get("prompt_tokens") or 0
            self.completion_tokens = usage.get("completion_tokens") or 0
        for choice in chunk.get("choices") or ():
            self.finish_reason = choice.get("finish_reason") or self.finish_reason
            delta = choice.get("delta")
            if not delta:
                continue
            content = delta.get("content")
            if content:
                self.text.append(content)
                deltas.append(content)
            for call in delta.get("tool_calls") or ():
                self._call(call)

    def _call(self, call: dict[str, Any]) -> None:
        # A call's id and name come in its first piece, its arguments in many.
        slot = self.calls.setdefault(call.get("index", 0), {"id": "", "name": "", "arguments": ""})
        slot["id"] = call.get("id") or slot["id"]
        function = call.get("function")
        if function:
            slot["name"] += function.get("name") or ""
            slot["arguments"] += function.get("arguments") or ""
