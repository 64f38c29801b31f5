"""The chat's LLM clients (agents_runtime.llm: OpenAIChat or the offline
responder) as a livekit-agents LLM, so a voice call thinks with exactly what a
chat turn thinks with: the same client, retries, error handling and offline
answers. Passages retrieved for the turn travel in the chat context as a
system message whose `extra` carries them, which is how the offline responder
gets them."""

from __future__ import annotations

import json
from typing import Any

from livekit.agents import APIConnectionError, llm
from livekit.agents.types import (
    DEFAULT_API_CONNECT_OPTIONS,
    NOT_GIVEN,
    APIConnectOptions,
    NotGivenOr,
)
from livekit.agents.utils import shortuuid

from agents_runtime.llm import LLM, ChatRequest, Completion, LLMError, Passage, recorded_model

PASSAGES = "syntera_passages"  # the key in ChatMessage.extra


def passages_message(text: str, passages: list[Passage]) -> llm.ChatMessage:
    return llm.ChatMessage(
        role="system",
        content=[text],
        extra={PASSAGES: [p.__dict__ for p in passages]},
    )


class HubLLM(llm.LLM):
    def __init__(self, client: LLM, *, model: str, temperature: float, max_tokens: int) -> None:
        super().__init__()
        self.client = client
        self._model, self.temperature, self.max_tokens = model, temperature, max_tokens

    @property
    def model(self) -> str:
        return recorded_model(self.client, self._model)

    @property
    def provider(self) -> str:
        return "syntera"

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
        extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
    ) -> llm.LLMStream:
        # The client retries before the first token itself; no second layer of retries.
        options = APIConnectOptions(max_retry=0, timeout=conn_options.timeout)
        return _Stream(self, chat_ctx=chat_ctx, tools=tools or [], conn_options=options)


class _Stream(llm.LLMStream):
    _llm: HubLLM

    def _request(self) -> ChatRequest:
        messages, _ = self._chat_ctx.to_provider_format("openai")
        passages: list[Passage] = []
        question = ""
        for item in self._chat_ctx.items:
            if item.type != "message":
                continue
            if PASSAGES in item.extra:
                passages = [Passage(**p) for p in item.extra[PASSAGES]]
            if item.role == "user":
                question = item.text_content or ""
        tool_specs = llm.ToolContext(self._tools).parse_function_tools("openai", strict=False)
        return ChatRequest(
            model=self._llm._model,
            messages=messages,
            temperature=self._llm.temperature,
            max_tokens=self._llm.max_tokens,
            tools=tool_specs or None,
            passages=passages,
            question=question,
        )

    async def _run(self) -> None:
        request_id = shortuuid("turn_")
        try:
            async for item in self._llm.client.stream(self._request()):
                if isinstance(item, Completion):
                    self._finish(request_id, item)
                    continue
                self._event_ch.send_nowait(
                    llm.ChatChunk(
                        id=request_id, delta=llm.ChoiceDelta(role="assistant", content=item)
                    )
                )
        except LLMError as exc:
            raise APIConnectionError(str(exc), retryable=False) from exc

    def _finish(self, request_id: str, completion: Completion) -> None:
        if completion.tool_calls:
            self._event_ch.send_nowait(
                llm.ChatChunk(
                    id=request_id,
                    delta=llm.ChoiceDelta(
                        role="assistant",
                        tool_calls=[
                            llm.FunctionToolCall(
                                call_id=call.id or shortuuid("call_"),
                                name=call.name,
                                arguments=call.arguments or json.dumps({}),
                            )
                            for call in completion.tool_calls
                        ],
                    ),
                )
            )
        self._event_ch.send_nowait(
            llm.ChatChunk(
                id=request_id,
                usage=llm.CompletionUsage(
                    prompt_tokens=completion.prompt_tokens,
                    completion_tokens=completion.completion_tokens,
                    total_tokens=completion.prompt_tokens + completion.completion_tokens,
                ),
            )
        )
