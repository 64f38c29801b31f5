"""The raw reader of a streamed Chat Completion (agents_runtime.chat_stream),
on the bytes fakes/openai.py streams the way OpenAI does, cut anywhere; and
OpenAIChat reading them through the real `openai` client."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from agents_runtime.chat_stream import ChatStream, StreamError
from agents_runtime.llm import ChatRequest, Completion, LLMError, OpenAIChat
from fakes.openai import Reply

ANSWER = "Refunds are issued within fourteen days [1]."


async def streamed(fake, reply: Reply, **body) -> bytes:
    """The body the fake streams for `reply`, as it came over the wire."""
    fake.then(reply)
    request = {
        "model": "gpt-test",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        **body,
    }
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{fake.base_url}/chat/completions", json=request) as response,
    ):
        return await response.read()


def read(raw: bytes, piece: int | None = None) -> tuple[list[str], ChatStream]:
    """Feed `raw` in pieces of `piece` bytes (all at once when None)."""
    stream = ChatStream("gpt-test")
    deltas: list[str] = []
    size = piece or len(raw) or 1
    for start in range(0, len(raw), size):
        deltas += stream.feed(raw[start : start + size])
    deltas += stream.end()
    return deltas, stream


@pytest.mark.parametrize("piece", [None, 1, 7, 64])
async def test_text_usage_and_model_however_the_bytes_are_cut(fake, piece):
    raw = await streamed(
        fake,
        Reply(text=ANSWER, prompt_tokens=77, completion_tokens=9, served_model="gpt-test-2024"),
    )
    deltas, stream = read(raw, piece)
    assert deltas == ["Refunds", " are", " issued", " within", " fourteen", " days", " [1]."]
    assert "".join(stream.text) == ANSWER
    assert (stream.prompt_tokens, stream.completion_tokens) == (77, 9)
    assert stream.model == "gpt-test-2024" and stream.finish_reason == "stop"
    assert stream.done and stream.calls == {}


async def test_tool_calls_assembled_from_their_pieces(fake):
    calls = [
        {"id": "call_1", "name": "capture_contact", "arguments": {"email": "a@b.co"}},
        {"id": "call_2", "name": "handoff_to_human", "arguments": {"reason": "asked"}},
    ]
    raw = await streamed(fake, Reply(tool_calls=calls))
    for piece in (None, 5):
        deltas, stream = read(raw, piece)
        assert deltas == [] and stream.finish_reason == "tool_calls"
        assert stream.calls == {
            0: {"id": "call_1", "name": "capture_contact", "arguments": '{"email": "a@b.co"}'},
            1: {"id": "call_2", "name": "handoff_to_human", "arguments": '{"reason": "asked"}'},
        }
        assert stream.completion_tokens == 1  # the fake counts at least one


async def test_an_error_event_mid_stream_raises_after_the_text_before_it(fake):
    raw = await streamed(fake, Reply(text=ANSWER, error_after=2))
    stream = ChatStream("gpt-test")
    deltas: list[str] = []
    with pytest.raises(StreamError, match="scripted mid-stream failure"):
        for start in range(0, len(raw), 16):
            deltas += stream.feed(raw[start : start + 16])
        stream.end()
    assert deltas == ["Refunds", " are"]
    # The whole body in one chunk, as a transport that read it all at once
    # hands it over: the text before the error still comes out first.
    whole, seen = ChatStream("gpt-test"), []
    with pytest.raises(StreamError, match="scripted mid-stream failure"):
        for delta in whole.feed(raw):
            seen.append(delta)
    assert seen == ["Refunds", " are"]


async def test_a_malformed_line_is_a_value_error(fake):
    raw = await streamed(fake, Reply(text=ANSWER, malformed=True))
    with pytest.raises(ValueError):
        read(raw)
    with pytest.raises(ValueError, match="not an object"):
        read(b"data: [1, 2]\n\n")


def test_comments_crlf_multiline_data_and_a_last_event_without_its_blank_line():
    raw = (
        b": keep-alive\r\n\r\n"
        b'data: {"model": "m1", "choices": [{"index": 0, "delta": {"content": "Hel"}}]}\r\n\r\n'
        b"event: message\n"
        b'data: {"choices": [{"index": 0,\n'
        b'data:  "delta": {"content": "lo"}, "finish_reason": "stop"}]}\n\n'
        b'data: {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}'
    )
    deltas, stream = read(raw, 3)
    assert deltas == ["Hel", "lo"] and stream.model == "m1" and stream.finish_reason == "stop"
    assert (stream.prompt_tokens, stream.completion_tokens) == (3, 2)
    assert not stream.done  # no [DONE]: the body's end ended it


def test_nothing_after_done_is_read():
    deltas, stream = read(b"data: [DONE]\n\ndata: {not json\n\n")
    assert deltas == [] and stream.done


def request() -> ChatRequest:
    return ChatRequest("gpt-test", [{"role": "user", "content": "hi"}], 0, 50)


async def test_openai_chat_turns_a_broken_stream_into_llm_error_after_its_deltas(fake):
    fake.then(Reply(text=ANSWER, error_after=3))
    seen: list[str] = []
    llm = OpenAIChat("sk", fake.base_url)
    with pytest.raises(LLMError, match="broke off: scripted mid-stream failure"):
        async for item in llm.stream(request()):
            seen.append(item)
    assert seen == ["Refunds", " are", " issued"]
    fake.then(Reply(text=ANSWER, malformed=True))
    with pytest.raises(LLMError, match="malformed"):
        async for _ in llm.stream(request()):
            pass
    await llm.aclose()


async def test_openai_chat_reuses_its_connection_across_replies(fake, aiohttp_server):
    """The body is read to its end after [DONE], so the next request goes out on the
    same connection (a stream closed early would cost a new one per reply)."""
    fake.default = Reply(text="Fake answer.", chunk_delay=0.02)  # [DONE] apart from the end
    peers: set = set()
    app = fake.app()

    @web.middleware
    async def note_peer(request, handler):
        peers.add(request.transport.get_extra_info("peername"))
        return await handler(request)

    app.middlewares.append(note_peer)
    server = await aiohttp_server(app)
    llm = OpenAIChat("sk", f"http://{server.host}:{server.port}/v1")
    for _ in range(3):
        items = [item async for item in llm.stream(request())]
        assert isinstance(items[-1], Completion) and items[-1].text == "Fake answer."
    assert len(peers) == 1
