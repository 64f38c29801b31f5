"""Models shared by every resource."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class RequestModel(BaseModel):
    """Base of every request body: unknown fields are an error, not ignored."""

    model_config = ConfigDict(extra="forbid")


def _drop_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def omittable() -> Any:
    """A field of a partial update that may be left out but not set to null:
    the type stays non-nullable, and the schema shows no null default."""
    return Field(None, json_schema_extra=_drop_default)


class QueryModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Page(QueryModel):
    limit: int = Field(20, ge=1, le=100)
    offset: int = Field(0, ge=0, le=1_000_000)


class ErrorBody(BaseModel):
    error: str
    code: str
    details: dict[str, Any] = Field(default_factory=dict)
