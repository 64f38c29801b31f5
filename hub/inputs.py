"""Inputs that REST and Socket.IO share: a message a person sends."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

from hub.errors import ApiError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Attachment(_Strict):
    url: HttpUrl
    type: str = Field(pattern=r"^[\w.+-]+/[\w.+-]+$", max_length=200)
    name: str = Field(min_length=1, max_length=255)
    size: int = Field(ge=0)


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
