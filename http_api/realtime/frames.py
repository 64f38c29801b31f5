"""Reading Socket.IO frames so that every one is answered.

python-socketio decodes a frame before any namespace sees it, and a frame it
cannot decode (JSON that orjson refuses: a lone surrogate, nesting beyond its
1 024 levels) raises inside Engine.IO's message handler, which logs a
traceback and drops it: the client's ack never comes. Its documented way in
is the `serializer` argument, a Packet subclass; this one turns an event it
cannot read into a `RefusedFrame`, which the namespace answers like any other
refusal (ack and `error` event). A frame that is not a Socket.IO packet at
all names no namespace to answer in: `MalformedFrame`, and the server closes
the connection after an `error` event. docs/realtime.md, "Frames".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from socketio import packet

from hub import jsoncodec
from hub.errors import ApiError


class Json:
    """python-socketio wants `dumps` to return str; ours returns bytes."""

    @staticmethod
    def dumps(value: Any, *args: Any, **kwargs: Any) -> str:
        return jsoncodec.dumps(value).decode()

    @staticmethod
    def loads(raw: str | bytes, *args: Any, **kwargs: Any) -> Any:
        return jsoncodec.loads(raw)


# Names python-socketio dispatches to a namespace's own connection handlers:
# a client may not send them as events.
RESERVED_EVENTS = frozenset({"connect", "disconnect", "connect_error"})


@dataclass(frozen=True)
class RefusedFrame:
    """Stands in for the name of an event that could not be read; it cannot
    come from JSON, so no client can send it."""

    error: ApiError


class MalformedFrame(ValueError):
    """Not a Socket.IO packet: no namespace, no event, nothing to answer."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.error = ApiError.bad_request(
            "INVALID_FRAME", "The frame is not a Socket.IO packet", reason=reason
        )


def invalid_json(reason: str) -> ApiError:
    # The code REST answers an undecodable body with.
    return ApiError.bad_request("INVALID_JSON", "The event is not valid JSON", reason=reason)


def invalid_event(reason: str) -> ApiError:
    return ApiError.bad_request("INVALID_EVENT", "The frame is not an event", reason=reason)


class Frame(packet.Packet):
    def decode(self, encoded_packet: Any) -> int:
        try:
            attachments = super().decode(encoded_packet)
        except orjson.JSONDecodeError as exc:
            # The header (type, namespace, ack id) was read before the JSON.
            if self.packet_type != packet.EVENT:
                raise MalformedFrame(f"undecodable JSON: {exc}") from None
            self.data = [RefusedFrame(invalid_json(str(exc)))]
            return 0
        except Exception as exc:  # decoding is parsing: any failure is a bad frame
            raise MalformedFrame(str(exc) or type(exc).__name__) from None
        if self.packet_type not in (
            packet.CONNECT,
            packet.DISCONNECT,
            packet.EVENT,
            packet.ACK,
            packet.BINARY_EVENT,
            packet.BINARY_ACK,
        ):
            raise MalformedFrame(f"unknown packet type {self.packet_type!r}")
        if self.packet_type == packet.EVENT:
            self.data = self._event(self.data)
        return attachments or 0

    def add_attachment(self, attachment: Any) -> bool:
        """A binary event's parts; once all are in, the event is checked as
        a text one is (none of ours takes binary, but none goes unanswered)."""
        try:
            complete = super().add_attachment(attachment)
        except Exception as exc:
            self.data = [RefusedFrame(invalid_event(str(exc) or type(exc).__name__))]
            return True
        if complete and self.packet_type == packet.BINARY_EVENT:
            self.data = self._event(self.data)
        return complete

    @staticmethod
    def _event(data: Any) -> list[Any]:
        """An event is `[name, ...arguments]`; anything else is refused."""
        if not isinstance(data, list) or not data or not isinstance(data[0], str):
            return [RefusedFrame(invalid_event("an event is a list starting with its name"))]
        if data[0] in RESERVED_EVENTS:
            return [RefusedFrame(invalid_event(f"{data[0]!r} is reserved"))]
        return data
