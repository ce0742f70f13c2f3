"""Shared HTTP plumbing: app state, authentication, the JSON response class."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import Depends, Request, Response
from sqlalchemy.orm import Session

from clarion.auth.keys import Scope
from clarion.auth.service import Principal, authenticate
from clarion.config import Settings
from clarion.credentials.crypto import Box
from clarion.delivery.providers.registry import ProviderRegistry
from clarion.errors import ClarionError
from clarion.storage.db import Database
from clarion.triggers.intake import TriggerIntake


@dataclass
class AppState:
    settings: Settings
    db: Database
    notify: Callable[[], None]  # wakes the embedded runner after a commit
    intake: TriggerIntake
    providers: ProviderRegistry
    box: Box  # seals and opens provider credentials
    gate: Any = None  # the ApiGate (ratelimit.gate), once the middleware stack is built


def state(request: Request) -> AppState:
    app_state: AppState = request.app.state.clarion
    return app_state


def principal_from(session: Session, request: Request) -> Principal:
    """The caller, as the API gate (ratelimit.gate) authenticated it; outside the gate, from
    the headers."""
    principal = request.scope.get("state", {}).get("principal")
    if isinstance(principal, Principal):
        return principal
    return authenticate(
        session,
        request.headers.get("x-clix-project-id"),
        request.headers.get("x-clix-api-key"),
    )


def _principal(request: Request) -> Principal:
    principal = request.scope.get("state", {}).get("principal")
    if isinstance(principal, Principal):
        return principal
    with state(request).db.read() as session:
        return principal_from(session, request)


def _scoped(*any_of: Scope, secret: bool = True) -> Any:
    def require(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
        principal.require(*any_of, secret=secret)
        return principal

    return Annotated[Principal, Depends(require)]


# What each endpoint needs (auth.keys.SCOPE_HELP says what each scope is for).
SdkKey = _scoped("ingest", secret=False)  # the SDK endpoints: a public key will do
IngestKey = _scoped("ingest")  # the server-side users endpoints
TriggerKey = _scoped("trigger")
FollowKey = _scoped("trigger", "read")  # a trigger's status and message log
ReadKey = _scoped("read")
AdminKey = _scoped("admin")


class JSONResponse(Response):
    """orjson-rendered JSON (fast, and datetimes/UUIDs need no help)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(exc: ClarionError) -> JSONResponse:
    """How every expected failure is answered: its status, the error body, and Retry-After
    when the error says when to come back."""
    response = JSONResponse(exc.to_body(), exc.status_code)
    if "retry_after" in exc.details:
        response.headers["Retry-After"] = str(exc.details["retry_after"])
    return response
