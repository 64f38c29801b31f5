"""Models shared by every resource."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

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
    """Base of every query string: unknown parameters are ignored, not an
    error. Browsers and their libraries add their own (`_=1733090000000`,
    a cache buster); bodies, which only the client writes, stay strict."""

    model_config = ConfigDict(extra="ignore")


class Page(QueryModel):
    limit: int = Field(20, ge=1, le=100)
    offset: int = Field(0, ge=0, le=1_000_000)


class ErrorBody(BaseModel):
    error: str
    code: str
    details: dict[str, Any] = Field(default_factory=dict)


MAX_RANGE_DAYS = 366
# Far enough from Python's calendar ends (years 1 and 9999) that a range's
# default length, a time zone shift and the day after an end date all fit.
MIN_YEAR, MAX_YEAR = 2, 9998
_OFFSET_SPACE = re.compile(r"(T[\d:.,]+) (\d{2}(?::?\d{2})?)$")


def _date_or_time(value: Any) -> Any:
    """An ISO 8601 date (`2024-01-31`, a whole day) or date-time
    (`2024-01-31T22:05:36.120Z`, what JavaScript's `toISOString()` sends; with
    an offset, or none: then in `tz`)."""
    if not isinstance(value, str):
        return value  # already parsed (a range built in code)
    text = value.strip()
    # An unencoded `+01:00` arrives as ` 01:00`: the offset is what was meant.
    text = _OFFSET_SPACE.sub(r"\1+\2", text)
    try:
        parsed: date = date.fromisoformat(text)
    except ValueError:
        try:
            # RFC 3339 allows a lowercase `t` and `z`; Python wants them upper.
            parsed = datetime.fromisoformat(text.upper())
        except ValueError:
            raise ValueError(
                "expected an ISO 8601 date (2024-01-31) or date-time (2024-01-31T22:05:36.120Z)"
            ) from None
    if not MIN_YEAR <= parsed.year <= MAX_YEAR:
        raise ValueError(f"the year must be between {MIN_YEAR} and {MAX_YEAR}")
    return parsed


DateOrTime = Annotated[
    date | datetime,
    BeforeValidator(_date_or_time),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "date"},
                {"type": "string", "format": "date-time"},
            ]
        }
    ),
]


class DateRange(QueryModel):
    """`startDate`/`endDate` are ISO 8601 dates or date-times, both inclusive.
    A plain date is a whole day in the time zone `tz` (an IANA name, default
    UTC); a date-time is its instant, read in `tz` only when it has no offset."""

    # First, so that the dates' validators see it.
    tz: str = "UTC"
    startDate: DateOrTime | None = None
    endDate: DateOrTime | None = None

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
        start, tz = info.data.get("startDate"), info.data.get("tz")
        if start and end and tz:
            zone = ZoneInfo(tz)
            if _instant(end, zone, end=True) <= _instant(start, zone, end=False):
                raise ValueError("endDate is before startDate")
            days = (_local_day(end, zone) - _local_day(start, zone)).days + 1
            if days > MAX_RANGE_DAYS:
                raise ValueError(f"the range from startDate is longer than {MAX_RANGE_DAYS} days")
        return end

    def bounds(self) -> tuple[datetime | None, datetime | None]:
        """[start, end) as instants: from local midnight of a start date (or
        the start instant) to local midnight after an end date (or just after
        the end instant)."""
        zone = ZoneInfo(self.tz)
        start = _instant(self.startDate, zone, end=False) if self.startDate else None
        end = _instant(self.endDate, zone, end=True) if self.endDate else None
        return start, end

    def local_day(self, value: date) -> date:
        """The day in `tz` that a bound falls on."""
        return _local_day(value, ZoneInfo(self.tz))

    def today(self) -> date:
        return datetime.now(UTC).astimezone(ZoneInfo(self.tz)).date()


def _instant(value: date, zone: ZoneInfo, *, end: bool) -> datetime:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=zone)
        # An end instant is included: timestamps count microseconds, so the
        # half-open range stops one microsecond after it.
        return moment + timedelta(microseconds=1) if end else moment
    return datetime.combine(value + timedelta(days=1) if end else value, time(), zone)


def _local_day(value: date, zone: ZoneInfo) -> date:
    if isinstance(value, datetime):
        return value.astimezone(zone).date() if value.tzinfo else value.date()
    return value


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
