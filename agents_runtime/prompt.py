"""The prompt of a turn: the agent's system prompt, the retrieved passages
numbered with their sources, the rolling summary of older history and the
recent window of messages, newest last."""

from __future__ import annotations

from typing import Any

from agents_runtime.llm import Passage

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant for this company's customers."

GROUNDING = (
    "Answer from the knowledge-base passages below when they are relevant, and cite each "
    "passage you use as [n]. If they do not contain the answer, say that you do not know "
    "and offer to connect the customer with a person. Never invent facts, prices or policies."
)

# A call is heard, not read: what the voice agent is told on top of the above.
SPOKEN = (
    "You are speaking with the customer on a voice call. Answer in one to three short, "
    "natural sentences, without lists, markdown, links or emoji. Do not read out citation "
    "numbers. Spell out numbers and prices the way a person would say them."
)


def voice_instructions(system_prompt: str | None) -> str:
    """The voice agent's standing instructions; the turn's passages come per turn."""
    return "\n\n".join(((system_prompt or DEFAULT_SYSTEM_PROMPT).strip(), GROUNDING, SPOKEN))


# Who said it, as the model should see it. Tool activity and notices are context
# the hub keeps for people; the model gets the conversation itself.
_ROLES = {"user": "user", "agent": "assistant", "human": "assistant"}


def passage_block(passages: list[Passage]) -> str:
    if not passages:
        return "Knowledge-base passages: none matched this question."
    lines = ["Knowledge-base passages:"]
    for number, p in enumerate(passages, start=1):
        where = p.source or "document"
        if p.page is not None:
            where += f", page {p.page}"
        lines.append(f"[{number}] (source: {where}; id {p.chunk_id})\n{p.content.strip()}")
    return "\n\n".join(lines)


def build_messages(
    *,
    system_prompt: str | None,
    passages: list[Passage],
    summary: str | None,
    history: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """`history` is the recent window, oldest first, ending with the user
    message being answered."""
    system = "\n\n".join(
        part
        for part in (
            (system_prompt or DEFAULT_SYSTEM_PROMPT).strip(),
            GROUNDING,
            passage_block(passages),
            f"Summary of the earlier conversation:\n{summary.strip()}" if summary else None,
        )
        if part
    )
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
    for message in history:
        role = _ROLES.get(message["sender_type"])
        if role is None or not message["content"]:
            continue
        content = message["content"]
        if message["sender_type"] == "human":
            content = f"(a member of our team wrote) {content}"
        messages.append({"role": role, "content": content})
    return messages
