"""How a stored message (or conversation) looks to each audience, on REST and
Socket.IO alike."""

from __future__ import annotations

from typing import Any

from hub import jsoncodec

_FIELDS = (
    "id",
    "conversation_id",
    "seq",
    "sender_type",
    "content",
    "attachments",
    "metadata",
    "reply_to",
    "created_at",
)
# What a visitor may see of an AI reply's metadata: its sources, not its costs.
_VISITOR_AI_FIELDS = ("sources",)


def _plain(value: Any) -> Any:
    """JSON-ready: ids and times as strings, as they travel."""
    return jsoncodec.loads(jsoncodec.dumps(value))


def visible_to_visitor(message: dict[str, Any]) -> bool:
    """Records of the AI's tool calls are for staff; notices and replies are for all."""
    return not (message["sender_type"] == "system" and (message.get("metadata") or {}).get("tool"))


def conversation_view(conversation: dict[str, Any]) -> dict[str, Any]:
    """A conversation as the REST API shows it to staff."""
    return _plain(conversation)


def staff_view(message: dict[str, Any]) -> dict[str, Any]:
    view = {name: message.get(name) for name in (*_FIELDS, "sender_id", "ai_metadata")}
    return _plain(view)


def visitor_view(message: dict[str, Any]) -> dict[str, Any]:
    view = {name: message.get(name) for name in _FIELDS}
    ai = message.get("ai_metadata")
    view["ai_metadata"] = (
        {name: ai.get(name) for name in _VISITOR_AI_FIELDS if name in ai} if ai else None
    )
    # Staff-only bookkeeping (tool arguments, error causes) stays with staff.
    view["metadata"] = {}
    return _plain(view)
