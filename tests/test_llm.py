"""LLM clients through the real `openai` package against the fake server,
and the offline responder."""

from __future__ import annotations

import json

import pytest
from aiohttp import web

from agents_runtime.handoff_intent import asks_for_a_person
from agents_runtime.llm import (
    HANDED_OFF,
    HANDOFF_FAILED,
    NO_HANDOFF,
    NOTHING_FOUND,
    ChatRequest,
    Completion,
    LLMError,
    OfflineResponder,
    OpenAIChat,
    Passage,
    recorded_model,
)
from fakes.openai import Reply


def request(**changes) -> ChatRequest:
    values = dict(
        model="gpt-test",
        messages=[{"role": "user", "content": "hi"}],
        temperature=0,
        max_tokens=123,
    )
    values.update(changes)
    return ChatRequest(**values)


async def collect(llm, req) -> tuple[list[str], Completion]:
    deltas, completion = [], None
    async for item in llm.stream(req):
        if isinstance(item, Completion):
            completion = item
        else:
            deltas.append(item)
    return deltas, completion


async def test_streams_with_settings_sent_as_configured(fake):
    fake.then(Reply(text="Refunds take five days [1].", prompt_tokens=77, completion_tokens=9))
    llm = OpenAIChat("sk-test", fake.base_url)
    deltas, completion = await collect(llm, request())
    assert "".join(deltas) == "Refunds take five days [1]." and len(deltas) == 5
    assert completion.text == "Refunds take five days [1]."
    assert (completion.prompt_tokens, completion.completion_tokens) == (77, 9)
    sent = fake.requests[-1]
    assert sent["model"] == "gpt-test" and sent["max_tokens"] == 123
    assert sent["temperature"] == 0 and sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}


async def test_tool_calls_are_assembled(fake):
    fake.then(Reply(tool_calls=[{"name": "capture_contact", "arguments": {"email": "a@b.co"}}]))
    tools = [
        {
            "type": "function",
            "function": {"name": "capture_contact", "parameters": {"type": "object"}},
        }
    ]
    _, completion = await collect(OpenAIChat("sk", fake.base_url), request(tools=tools))
    [call] = completion.tool_calls
    assert call.name == "capture_contact" and call.arguments == '{"email": "a@b.co"}'
    assert completion.finish_reason == "tool_calls"
    assert fake.requests[-1]["tools"] == tools


async def test_retries_429_and_5xx_before_the_first_token(fake):
    fake.then(Reply(status=429), Reply(status=503), Reply(text="ok now"))
    llm = OpenAIChat("sk", fake.base_url, backoff=0.01)
    _, completion = await collect(llm, request())
    assert completion.text == "ok now" and len(fake.requests) == 3


async def test_gives_up_with_a_clear_error(fake):
    fake.then(*[Reply(status=500)] * 3)
    with pytest.raises(LLMError, match="unavailable after 3 attempts"):
        await collect(OpenAIChat("sk", fake.base_url, backoff=0.01), request())
    fake.then(Reply(status=400))
    with pytest.raises(LLMError, match="400"):
        await collect(OpenAIChat("sk", fake.base_url), request())


async def test_malformed_stream_and_timeout(fake):
    fake.then(Reply(text="x", malformed=True))
    with pytest.raises(LLMError):
        await collect(OpenAIChat("sk", fake.base_url), request())
    fake.then(Reply(text="late", delay=1.0))
    with pytest.raises(LLMError, match="timed out"):
        await collect(OpenAIChat("sk", fake.base_url, timeout=0.2), request())


PASSAGES = [
    Passage(
        "d1",
        "c1",
        "Refunds are issued within 14 days of a return. Shipping is free over $50.",
        0.9,
        "policy.pdf",
        3,
    ),
    Passage(
        "d2",
        "c2",
        "Our office is in Lisbon. Support answers every day from 9 to 17.",
        0.5,
        "about.md",
        None,
    ),
]


async def test_offline_responder_quotes_with_citations():
    offline = OfflineResponder()
    deltas, completion = await collect(
        offline, request(passages=PASSAGES, question="How long do refunds take after a return?")
    )
    assert "".join(deltas) == completion.text and len(deltas) > 1
    assert "Refunds are issued within 14 days of a return. [1]" in completion.text
    assert "Lisbon" not in completion.text  # only what matches the question
    # Its own model, with no tokens: it runs no tokenizer and no provider counts any.
    assert completion.model == "offline-responder"
    assert (completion.prompt_tokens, completion.completion_tokens) == (0, 0)


async def test_offline_responder_refuses_without_passages():
    _, completion = await collect(
        OfflineResponder(), request(question="What is the meaning of life?")
    )
    assert completion.text == NOTHING_FOUND
    assert "person" in completion.text


@pytest.mark.parametrize(
    "text",
    [
        "I want to talk to a human please",
        "speak to a person",
        "real person",
        "customer service representative",
        "agent please",
        "Agent",
        "Can I talk to a real person?",
        "Connect me with a customer service representative.",
        "Are you a bot? I want to talk to a human",
        "Put me through to someone",
        "I need a human",
        "Is there a human I can talk to?",
        "get me a real person now",
        "I’d like to speak with someone from your team",
        "HUMAN PLEASE!",
    ],
)
def test_a_clear_request_for_a_person(text):
    assert asks_for_a_person(text)


@pytest.mark.parametrize(
    "text",
    [
        "are you human?",
        "what does a human agent cost?",
        "How much is a live agent?",
        "Am I talking to a person?",
        "Is this a real person?",
        "How do I get the agent to answer in French?",
        "I want the agent to reply in French",
        "I need support with my invoice",
        "I don't want to talk to a human",
        "your agent said refunds take 5 days",
        "someone's order is late",
        "What is your refund policy?",
    ],
)
def test_no_request_for_a_person(text):
    assert not asks_for_a_person(text)


HANDOFF_SPEC = [{"type": "function", "function": {"name": "handoff_to_human", "parameters": {}}}]


async def test_offline_responder_calls_the_handoff_tool_then_says_its_last_word():
    asked = [{"role": "user", "content": "Can I speak to a person?"}]
    deltas, completion = await collect(
        OfflineResponder(),
        request(messages=asked, question="Can I speak to a person?", tools=HANDOFF_SPEC),
    )
    assert deltas == [] and completion.text == ""
    [call] = completion.tool_calls
    assert call.name == "handoff_to_human" and completion.finish_reason == "tool_calls"
    assert json.loads(call.arguments) == {"reason": "The visitor asked for a person."}

    for result, said in [
        ('{"handed_off": true, "reason": "x"}', HANDED_OFF),
        ('{"error": "the conversation no longer exists"}', HANDOFF_FAILED),
    ]:
        fed_back = [*asked, {"role": "tool", "tool_call_id": call.id, "content": result}]
        _, completion = await collect(
            OfflineResponder(),
            request(messages=fed_back, question="Can I speak to a person?", tools=HANDOFF_SPEC),
        )
        assert (completion.text, completion.tool_calls) == (said, [])


async def test_offline_responder_without_the_handoff_tool_says_it_cannot():
    _, completion = await collect(
        OfflineResponder(), request(question="Can I speak to a person?", passages=PASSAGES)
    )
    assert (completion.text, completion.tool_calls) == (NO_HANDOFF, [])


def test_a_reply_is_recorded_as_the_model_that_produced_it(fake):
    assert recorded_model(OfflineResponder(), "gpt-4o-mini") == "offline-responder"
    assert recorded_model(OpenAIChat("sk", fake.base_url), "gpt-4o-mini") == "gpt-4o-mini"


async def test_a_model_that_cannot_be_reached_is_retried_then_unavailable_not_timed_out(
    unused_tcp_port,
):
    """Nothing listens: the aiohttp transport names a refused connect a
    timeout; it is an unavailable model, tried again, not a slow one."""
    llm = OpenAIChat("sk", f"http://127.0.0.1:{unused_tcp_port}/v1", backoff=0.01)
    try:
        with pytest.raises(LLMError, match="unavailable after 3 attempts"):
            await collect(llm, request())
    finally:
        await llm.aclose()


async def test_a_stream_cut_by_the_server_is_an_error(aiohttp_server):
    """The connection drops after the first chunk: an LLMError, not a reply."""

    async def cut(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        chunk = {"choices": [{"index": 0, "delta": {"content": "Hel"}}], "model": "m"}
        await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        request.transport.close()
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", cut)
    server = await aiohttp_server(app)
    llm = OpenAIChat("sk", f"http://{server.host}:{server.port}/v1")
    try:
        with pytest.raises(LLMError, match="broke off"):
            await collect(llm, request())
    finally:
        await llm.aclose()
