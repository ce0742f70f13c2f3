"""Shared HTTP plumbing: app state, authentication, the JSON response class."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session
from starlette.responses import JSONResponse as StarletteJSONResponse

from clarion import limits
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
    buckets: Any  # the rate-limit buckets (ratelimit.bucket.Buckets)
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


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")  # details: path, limit, retry_after, ...

    code: str = Field(description="Stable, machine-readable.")
    message: str = Field(description="What went wrong and what to do about it.")


class ErrorBody(BaseModel):
    error: ErrorDetail


class RateLimited(BaseModel):
    error: Literal["Too Many Requests"]


def _error_doc(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


# The answers every API operation may give besides its own, as the OpenAPI document states
# them (FastAPI's default 422 "HTTPValidationError" is replaced: bad shapes get 400).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error_doc("Bad input: the code and message say what to fix."),
    401: _error_doc("Missing or wrong X-Clix-Project-ID / X-Clix-API-Key."),
    403: _error_doc("The key lacks the scope, or a limit refuses the call."),
    404: _error_doc("No such object in the caller's project."),
    409: _error_doc("In conflict with the object's state, or an Idempotency-Key in flight."),
    413: _error_doc("The body is over CLARION_MAX_BODY_BYTES."),
    422: _error_doc("An Idempotency-Key reused with another body."),
    429: {"model": RateLimited, "description": "Over the rate limit: see Retry-After."},
    503: _error_doc("The database is unavailable: nothing was done; see Retry-After."),
}


class JSONResponse(StarletteJSONResponse):
    """orjson-rendered JSON (fast, and datetimes/UUIDs need no help). A JSONResponse, so
    that the OpenAPI document describes each answer with its response model."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class _OrjsonRequest(Request):
    """Bodies parsed by orjson, as the trigger call parses its own: text that is not valid
    Unicode (a lone surrogate escape) and numbers out of range are refused as invalid JSON
    (400) instead of failing later, when the value is stored, as a 500."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = orjson.loads(await self.body())
        return self._json


class _ApiRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            wrapped = _OrjsonRequest(request.scope, request.receive)
            raw = await wrapped.body()
            if b"\\u0000" in raw:  # text with NUL characters is refused (limits.refuse_nul)
                try:
                    parsed = await wrapped.json()
                except orjson.JSONDecodeError:
                    pass  # FastAPI answers it: 400 invalid_json
                else:
                    limits.refuse_nul(raw, parsed)
            return await handler(wrapped)

        return route


def api_router(tag: str) -> APIRouter:
    """A router for /api/v1 endpoints."""
    return APIRouter(prefix="/api/v1", tags=[tag], route_class=_ApiRoute)


def error_response(exc: ClarionError) -> JSONResponse:
    """How every expected failure is answered: its status, the error body, and Retry-After
    when the error says when to come back."""
    response = JSONResponse(exc.to_body(), exc.status_code)
    if "retry_after" in exc.details:
        response.headers["Retry-After"] = str(exc.details["retry_after"])
    return response
