"""Typed errors. Each carries the HTTP status, the error code and message, the response body
and the request id; none carries the API key."""

from __future__ import annotations

import builtins
from typing import Any


class ClixError(Exception):
    """Base of every error the client raises for a failed call."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        body: Any = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.body = body
        self.request_id = request_id

    def __str__(self) -> str:
        parts = [self.message]
        if self.status is not None:
            parts.append(f"status {self.status}")
        if self.code:
            parts.append(f"code {self.code}")
        if self.request_id:
            parts.append(f"request id {self.request_id}")
        return " | ".join(parts)


class AuthenticationError(ClixError):
    """401: the project id or key is wrong."""


class PermissionError(ClixError, builtins.PermissionError):
    """403: the key may not do this (a public key on a server endpoint)."""


class InvalidRequestError(ClixError):
    """Any other 4xx: fix the request; never retried."""


class RateLimitError(ClixError):
    """429; ``retry_after`` is the server's Retry-After in seconds, when given."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ServerError(ClixError):
    """5xx."""


class NetworkError(ClixError):
    """The request did not complete: connection refused, reset, DNS, ..."""


class TimeoutError(ClixError, builtins.TimeoutError):
    """The request or the whole call (with its retries) ran out of time."""


class PlanMismatchError(ClixError):
    """The properties do not match the trigger plan; raised before any request."""


class DedupeInProgressError(ClixError):
    """Another call with the same dedupe key is still in flight."""


TRANSIENT = (NetworkError, TimeoutError, ServerError, RateLimitError)
