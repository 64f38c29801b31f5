"""Inputs that REST and Socket.IO share: a message a person sends."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    HttpUrl,
    model_validator,
)

from hub import jsoncodec
from hub.errors import ApiError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Attachment(_Strict):
    url: HttpUrl
    type: str = Field(pattern=r"^[\w.+-]+/[\w.+-]+$", max_length=200)
    name: str = Field(min_length=1, max_length=255)
    size: Integer = Field(ge=0)


class NewMessage(_Strict):
    content: str = Field("", max_length=10_000)
    attachments: list[Attachment] = Field(default_factory=list, max_length=10)
    # The sender's own id for the message: sending it again stores nothing new.
    client_id: str | None = Field(None, min_length=1, max_length=100)

    @model_validator(mode="after")
    def _not_empty(self) -> NewMessage:
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


def _integral(value: Any) -> Any:
    # JSON does not tell 2 from 2.0, and JSON Schema counts 2.0 as an integer;
    # strict validation would not. 2.5 and "2" are still refused.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Integer = Annotated[int, BeforeValidator(_integral)]
