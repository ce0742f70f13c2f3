"""The error tree. Each class carries its HTTP status and a stable code; one handler renders it."""

from __future__ import annotations

from typing import Any


class ClarionError(Exception):
    """An expected, client-facing failure. Anything else reaching the handler is a bug (500)."""

    status_code: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details

    def to_body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        error.update(self.details)
        return {"error": error}


class AuthenticationError(ClarionError):
    status_code = 401
    code = "invalid_credentials"


class PermissionDenied(ClarionError):
    status_code = 403
    code = "insufficient_scope"


class NotFound(ClarionError):
    status_code = 404
    code = "not_found"


class InvalidRequest(ClarionError):
    status_code = 400
    code = "invalid_request"


class InvalidJSON(ClarionError):
    status_code = 400
    code = "invalid_json"


class PayloadTooLarge(ClarionError):
    status_code = 413
    code = "payload_too_large"


class Conflict(ClarionError):
    status_code = 409
    code = "conflict"


class Unavailable(ClarionError):
    """The database (or another part Clarion needs) cannot be reached right now."""

    status_code = 503
    code = "unavailable"


def unavailable(what: str = "the database") -> Unavailable:
    """The answer while a part Clarion needs cannot be reached: nothing was done."""
    return Unavailable(
        f"{what[0].upper()}{what[1:]} cannot be reached right now; nothing was done. "
        "Retry shortly.",
        retry_after=2,
    )
