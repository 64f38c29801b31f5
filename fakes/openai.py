"""A small OpenAI-compatible HTTP server, the model for the tests and the
benchmarks.

It speaks `POST /v1/chat/completions` with `stream: true` the way OpenAI does
(server-sent events, a final usage chunk when `stream_options.include_usage`,
`[DONE]`), so the hub is tested through the real `openai` client. Tests
script what it answers next; it records every request it receives. Served
as fakes/__init__.py says.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Reply:
    """What the server answers to one request."""

    text: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # {"name", "arguments"}
    status: int = 200  # non-200: an error response instead of a stream
    delay: float = 0.0  # seconds before the first byte
    chunk_delay: float = 0.0  # seconds between streamed chunks
    malformed: bool = False  # stream invalid JSON after the first chunk
    # Stream this many words, then an error event (as OpenAI reports a failure
    # after its 200) and end.
    error_after: int | None = None
    prompt_tokens: int = 50
    completion_tokens: int | None = None  # default: one per word
    # The model name the answer carries (OpenAI names a dated snapshot, e.g.
    # gpt-4o-mini-2024-07-18); default: the requested model.
    served_model: str | None = None


class FakeOpenAI:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: deque[Reply] = deque()
        self.default = Reply(text="Fake answer.")
        self.url: str | None = None  # where it is served

    def then(self, *replies: Reply) -> FakeOpenAI:
        self.script.extend(replies)
        return self

    @property
    def base_url(self) -> str:
        assert self.url is not None, "serve app() first"
        return f"{self.url}/v1"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._completions)
        app.router.add_post("/v1/embeddings", self._embeddings)
        return app

    async def _embeddings(self, request: web.Request) -> web.Response:
        """Deterministic vectors: texts sharing words get similar vectors."""
        body = await request.json()
        self.requests.append(body)
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = []
        for index, text in enumerate(texts):
            vector = [0.0] * 64
            for word in text.lower().split():
                vector[hash(word.strip(".,?!")) % 64] += 1.0
            data.append({"object": "embedding", "index": index, "embedding": vector})
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            }
        )

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        reply = self.script.popleft() if self.script else self.default
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.status != 200:
            return web.json_response(
                {"error": {"message": "scripted failure", "type": "server_error", "code": None}},
                status=reply.status,
            )
        if not body.get("stream"):
            return web.json_response(self._whole(body, reply))
        return await self._stream(request, body, reply)

    def _whole(self, body: dict, reply: Reply) -> dict:
        completion = reply.completion_tokens or max(1, len(reply.text.split()))
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": reply.served_model or body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": reply.prompt_tokens,
                "completion_tokens": completion,
                "total_tokens": reply.prompt_tokens + completion,
            },
        }

    async def _stream(self, request: web.Request, body: dict, reply: Reply) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": reply.served_model or body["model"],
        }

        async def send(payload: dict | str) -> None:
            data = payload if isinstance(payload, str) else json.dumps(payload)
            await response.write(f"data: {data}\n\n".encode())
            if reply.chunk_delay:
                await asyncio.sleep(reply.chunk_delay)

        def chunk(delta: dict, finish: str | None = None) -> dict:
            return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

        await send(chunk({"role": "assistant", "content": ""}))
        if reply.malformed:
            await send("{not json")
            await response.write_eof()
            return response
        words = reply.text.split(" ") if reply.text else []
        for i, word in enumerate(words):
            if i == reply.error_after:
                await send(
                    {"error": {"message": "scripted mid-stream failure", "type": "server_error"}}
                )
                await response.write_eof()
                return response
            await send(chunk({"content": word if i == 0 else " " + word}))
        for index, call in enumerate(reply.tool_calls):
            call_id = call.get("id") or f"call_{uuid.uuid4().hex[:12]}"
            arguments = json.dumps(call["arguments"])
            half = len(arguments) // 2
            # Arguments arrive in pieces, as OpenAI streams them.
            await send(
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": index,
                                "id": call_id,
                                "type": "function",
                                "function": {"name": call["name"], "arguments": arguments[:half]},
                            }
                        ]
                    }
                )
            )
            await send(
                chunk(
                    {"tool_calls": [{"index": index, "function": {"arguments": arguments[half:]}}]}
                )
            )
        await send(chunk({}, "tool_calls" if reply.tool_calls else "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            completion = reply.completion_tokens or max(1, len(words))
            await send(
                {
                    **base,
                    "choices": [],
                    "usage": {
                        "prompt_tokens": reply.prompt_tokens,
                        "completion_tokens": completion,
                        "total_tokens": reply.prompt_tokens + completion,
                    },
                }
            )
        await send("[DONE]")
        await response.write_eof()
        return response
