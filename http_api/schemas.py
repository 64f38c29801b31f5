"""Models shared by every resource."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from hub.inputs import Attachment, NewStaffMessage, NewVisitorMessage


class RequestModel(BaseModel):
    """Base of every request body: unknown fields are an error, not ignored."""

    model_config = ConfigDict(extra="forbid")


# Message inputs live in hub.inputs: REST and Socket.IO read them alike.
__all__ = ["Attachment", "NewStaffMessage", "NewVisitorMessage", "RequestModel"]


def _drop_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def omittable(**constraints: Any) -> Any:
    """A field of a partial update that may be left out but not set to null:
    the type stays non-nullable, and the schema shows no null default."""
    return Field(None, json_schema_extra=_drop_default, **constraints)


class QueryModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Page(QueryModel):
    limit: int = Field(20, ge=1, le=100)
    offset: int = Field(0, ge=0, le=1_000_000)


class ErrorBody(BaseModel):
    error: str
    code: str
    details: dict[str, Any] = Field(default_factory=dict)


MAX_RANGE_DAYS = 366


class DateRange(QueryModel):
    """`startDate`/`endDate` are ISO dates, both inclusive, in the time zone `tz`."""

    startDate: date | None = None
    endDate: date | None = None
    tz: str = "UTC"

    @field_validator("tz")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("unknown time zone") from None
        return value

    @field_validator("endDate")
    @classmethod
    def _ordered(cls, end: date | None, info: ValidationInfo) -> date | None:
        # A field validator, not a model one, so that the error names its field.
        start = info.data.get("startDate")
        if start and end:
            if end < start:
                raise ValueError("endDate is before startDate")
            if (end - start).days + 1 > MAX_RANGE_DAYS:
                raise ValueError(f"the range from startDate is longer than {MAX_RANGE_DAYS} days")
        return end

    def bounds(self) -> tuple[datetime | None, datetime | None]:
        """[start, end) as instants: local midnight of startDate to local
        midnight after endDate."""
        zone = ZoneInfo(self.tz)
        start = datetime.combine(self.startDate, time(), zone) if self.startDate else None
        end = (
            datetime.combine(self.endDate + timedelta(days=1), time(), zone)
            if self.endDate
            else None
        )
        return start, end

    def today(self) -> date:
        return datetime.now(UTC).astimezone(ZoneInfo(self.tz)).date()


class Message(BaseModel):
    id: UUID
    conversation_id: UUID
    seq: int
    sender_type: str
    sender_id: UUID | None
    content: str
    attachments: list[dict[str, Any]]
    ai_metadata: dict[str, Any] | None
    metadata: dict[str, Any]
    reply_to: UUID | None = None  # the user message an AI reply answers
    created_at: datetime
