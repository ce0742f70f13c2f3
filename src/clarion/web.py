"""Shared HTTP plumbing: app state, body reading with a size cap, authentication."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import Depends, Request, Response
from sqlalchemy.orm import Session

from clarion.auth.service import Principal, authenticate
from clarion.config import Settings
from clarion.errors import PayloadTooLarge
from clarion.storage.db import Database
from clarion.triggers.intake import TriggerIntake


@dataclass
class AppState:
    settings: Settings
    db: Database
    notify: Callable[[], None]  # wakes the embedded runner after a commit
    intake: TriggerIntake


def state(request: Request) -> AppState:
    app_state: AppState = request.app.state.clarion
    return app_state


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    too_large = PayloadTooLarge(
        f"The body is larger than {limit} bytes (CLARION_MAX_BODY_BYTES); send less data.",
        limit=limit,
    )
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def principal_from(session: Session, request: Request) -> Principal:
    return authenticate(
        session,
        request.headers.get("x-clix-project-id"),
        request.headers.get("x-clix-api-key"),
    )


def _principal(request: Request) -> Principal:
    with state(request).db.read() as session:
        return principal_from(session, request)


def _secret(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
    principal.require_secret()
    return principal


AnyKey = Annotated[Principal, Depends(_principal)]
SecretKey = Annotated[Principal, Depends(_secret)]


class JSONResponse(Response):
    """orjson-rendered JSON (fast, and datetimes/UUIDs need no help)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
