"""Which conversation a voice call may join: the same rule for a LiveKit
token or dispatch and for a browser call over the voice WebSocket."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from hub.errors import ApiError
from hub.store import conversations


async def joinable(
    conn: asyncpg.Connection, conversation_id: UUID, *, agent_id: UUID, channels: tuple[str, ...]
) -> dict[str, Any]:
    """The active conversation of `agent_id` on one of `channels`. Another
    agent's conversation is not found, as a made-up id is (a visitor's token
    names an agent; it must not reach past it); an ended or text one is a
    conflict."""
    conversation = await conversations.get(conn, conversation_id)
    if conversation is None or conversation["agent_id"] != agent_id:
        raise ApiError.not_found("Conversation")
    if conversation["status"] != "active":
        raise ApiError.conflict("The conversation has ended", status=conversation["status"])
    if conversation["channel"] not in channels:
        raise ApiError.conflict(
            "Not a voice conversation: start one with channel voice",
            channel=conversation["channel"],
        )
    return conversation
