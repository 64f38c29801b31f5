"""The one error type. Every failure a client sees is an ApiError rendered as
`{"error", "code", "details"}` — by REST, in Socket.IO acks and error events,
and on the voice sockets before they close."""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T")


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "code": self.code, "details": self.details}

    # The common cases, so call sites read as what happened.
    @classmethod
    def not_found(cls, what: str = "Resource", **details: Any) -> ApiError:
        return cls(404, "NOT_FOUND", f"{what} not found", details)

    @classmethod
    def bad_request(cls, code: str, message: str, **details: Any) -> ApiError:
        return cls(400, code, message, details)

    @classmethod
    def validation(cls, fields: dict[str, str]) -> ApiError:
        return cls(400, "VALIDATION_ERROR", "Request validation failed", {"fields": fields})

    @classmethod
    def unauthorized(
        cls, message: str = "Authentication required", code: str = "UNAUTHORIZED"
    ) -> ApiError:
        return cls(401, code, message, headers={"WWW-Authenticate": "Bearer"})

    @classmethod
    def forbidden(cls, message: str = "You do not have permission to do this") -> ApiError:
        return cls(403, "FORBIDDEN", message)

    @classmethod
    def origin_not_allowed(cls, message: str, origin: str | None) -> ApiError:
        """A browser page's origin that may not call: a publishable key's
        allowed origins, or CORS_ORIGINS for the staff API."""
        return cls(403, "ORIGIN_NOT_ALLOWED", message, {"origin": origin})

    @classmethod
    def conflict(cls, message: str, **details: Any) -> ApiError:
        return cls(409, "CONFLICT", message, details)

    @classmethod
    def rate_limited(
        cls, message: str = "Too many requests", retry_after: int | None = None, **details: Any
    ) -> ApiError:
        """429, on REST and on sockets alike; `retry_after` in seconds."""
        if retry_after is not None:
            details["retry_after"] = retry_after
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        return cls(429, "RATE_LIMITED", message, details, headers)

    @classmethod
    def unavailable(cls, message: str, code: str = "SERVICE_UNAVAILABLE") -> ApiError:
        return cls(503, code, message, headers={"Retry-After": "5"})


def found(value: T | None, what: str, **details: Any) -> T:
    """`value`, or the 404 for `what` when the store found no row (None) or
    touched none (a delete or revoke that answers False):

        agent = found(await agents.get(conn, agent_id), "Agent")
        found(await agents.delete(conn, agent_id), "Agent")

    A row the caller may not use is best not found by the query at all
    (`agents.get_enabled`); a rule with more than one answer (404 or 409) stays
    written out where it is read."""
    if value is None or value is False:
        raise ApiError.not_found(what, **details)
    return value
