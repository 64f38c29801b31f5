"""Inputs that REST and Socket.IO share: how a decoded JSON input is checked
and validated, and the messages people send."""

from __future__ import annotations

import re
from typing import Annotated, Any, TypeVar
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    HttpUrl,
    ValidationError,
    model_validator,
)

from hub import jsoncodec
from hub.errors import ApiError

Model = TypeVar("Model", bound=BaseModel)

# Levels of objects and lists in any JSON input, a REST body or a Socket.IO
# payload: far more than any of ours needs, far less than what makes
# encoders, validators and recursive walks give up (orjson encodes 254).
MAX_DEPTH = 32


def too_deep(value: Any) -> str | None:
    """The top-level field (or "body") holding containers nested deeper than
    MAX_DEPTH, or None. Walked without recursion: the input may be 1 000 deep."""
    roots = value.items() if isinstance(value, dict) else [("body", value)]
    for name, root in roots:
        stack = [(root, 1 + isinstance(value, dict))]
        while stack:
            item, depth = stack.pop()
            if not isinstance(item, dict | list):
                continue
            if depth > MAX_DEPTH:
                return str(name)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return None


def find_nul(value: Any, path: str = "") -> str | None:
    """The path of the first string holding a NUL character (PostgreSQL text
    cannot store one), or None."""
    if isinstance(value, str):
        return path or "body" if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in str(key):
                return f"{path}.{key}".strip(".")
            found = find_nul(item, f"{path}.{key}".strip("."))
            if found:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = find_nul(item, f"{path}.{index}".strip("."))
            if found:
                return found
    return None


def refuse_unstorable(value: Any) -> None:
    """What no JSON input may hold, whatever its model: nesting beyond
    MAX_DEPTH and NUL characters (VALIDATION_ERROR naming the field)."""
    if deep := too_deep(value):
        raise ApiError.validation({deep: f"must not nest deeper than {MAX_DEPTH} levels"})
    if nul := find_nul(value):
        raise ApiError.validation({nul: "NUL characters are not allowed"})


def validation_fields(exc: ValidationError) -> dict[str, str]:
    fields: dict[str, str] = {}
    for error in exc.errors(include_url=False):
        name = ".".join(str(part) for part in error["loc"]) or "body"
        fields.setdefault(name, error["msg"])
    return fields


def validated(model: type[Model], value: Any, raw: bytes | None = None) -> Model:
    """A decoded JSON input (`raw`: the bytes it was decoded from, if at hand)
    as `model`, or VALIDATION_ERROR. The one way REST bodies and Socket.IO
    payloads are read, so both give the same answer to the same input.

    Validated as JSON, strictly: ids may be strings, but "5" is not a number
    and "true" is not a boolean."""
    refuse_unstorable(value)
    try:
        return model.model_validate_json(
            raw if raw is not None else jsoncodec.dumps(value), strict=True
        )
    except ValidationError as exc:
        raise ApiError.validation(validation_fields(exc)) from None


def _integral(value: Any) -> Any:
    # JSON does not tell 2 from 2.0, and JSON Schema counts 2.0 as an integer;
    # strict validation would not. 2.5 and "2" are still refused.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Integer = Annotated[int, BeforeValidator(_integral)]

# C0 controls but tab, line feed and carriage return: invisible in a chat,
# and they reach the AI, the dashboard and e-mails as they are.
_TEXT_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
# A name or an id is one line: no C0 control at all, nor DEL.
_NAME_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")


def _without(pattern: re.Pattern[str]):
    def check(value: str) -> str:
        if found := pattern.search(value):
            raise ValueError(f"control character U+{ord(found.group()):04X} is not allowed")
        return value

    return AfterValidator(check)


MessageText = Annotated[str, _without(_TEXT_CONTROLS)]
OneLine = Annotated[str, _without(_NAME_CONTROLS)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Attachment(_Strict):
    url: HttpUrl
    type: str = Field(pattern=r"^[\w.+-]+/[\w.+-]+$", max_length=200)
    name: OneLine = Field(min_length=1, max_length=255)
    size: Integer = Field(ge=0)


# A visitor writes in the widget's box (4 000 characters, as its textarea
# says); staff in the dashboard's (10 000).
VISITOR_CONTENT_MAX = 4_000
STAFF_CONTENT_MAX = 10_000


class _NewMessage(_Strict):
    """A message a person sends, over REST or Socket.IO alike. The content
    limit is the sender's (below); `check_sizes` adds the attachment size
    limit, which is the hub's setting."""

    content: MessageText = ""
    attachments: list[Attachment] = Field(default_factory=list, max_length=10)
    # The sender's own id for the message: sending it again stores nothing new.
    client_id: OneLine | None = Field(None, min_length=1, max_length=100)

    @model_validator(mode="after")
    def _not_empty(self) -> _NewMessage:
        if not self.content.strip() and not self.attachments:
            raise ValueError("a message needs content or attachments")
        return self

    def check_sizes(self, limit: int) -> None:
        too_big = {
            f"attachments.{i}.size": f"must be at most {limit} bytes"
            for i, a in enumerate(self.attachments)
            if a.size > limit
        }
        if too_big:
            raise ApiError.validation(too_big)

    def attachment_list(self) -> list[dict[str, Any]]:
        return [a.model_dump(mode="json") for a in self.attachments]


class NewVisitorMessage(_NewMessage):
    """A visitor's message: `POST /public/conversations/:id/messages` and
    `/widget` `message:send`."""

    content: MessageText = Field("", max_length=VISITOR_CONTENT_MAX)


class NewStaffMessage(_NewMessage):
    """A staff reply: `POST /api/conversations/:id/messages`."""

    content: MessageText = Field("", max_length=STAFF_CONTENT_MAX)


class NewStaffSocketMessage(NewStaffMessage):
    """A staff reply over `/dashboard` `message:send`, which names its conversation."""

    conversation_id: UUID


MAX_JSON_OBJECT_BYTES = 16 * 1024
# Message sequence numbers are PostgreSQL integers: a bigger one is no seq,
# and must be refused before it reaches a query.
MAX_SEQ = 2**31 - 1


def _storable(value: dict[str, Any]) -> dict[str, Any]:
    # Free-form objects go into JSONB as they are: they must encode (integers
    # within 64 bits) and stay small.
    try:
        size = len(jsoncodec.dumps(value))
    except TypeError:
        raise ValueError("must hold only JSON values with integers within 64 bits") from None
    if size > MAX_JSON_OBJECT_BYTES:
        raise ValueError(f"must be at most {MAX_JSON_OBJECT_BYTES} bytes as JSON")
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(_storable)]
