"""create_app(): routes, error rendering, request ids, and the embedded runner's lifespan."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clarion import __version__, cache, health, limits, metrics
from clarion.auth.endpoints import router as keys_router
from clarion.campaigns.endpoints import router as campaigns_router
from clarion.config import Settings, get_settings
from clarion.console import pages as console
from clarion.console.accounts import any_admin
from clarion.credentials.crypto import Box, load_key
from clarion.credentials.endpoints import router as providers_router
from clarion.delivery.endpoints import router as delivery_router
from clarion.delivery.providers.registry import build_registry
from clarion.errors import ClarionError, PayloadTooLarge, unavailable
from clarion.events.endpoints import router as events_router
from clarion.idempotency.middleware import IdempotencyMiddleware
from clarion.inbox.endpoints import router as inbox_router
from clarion.live_activities.endpoints import router as live_activities_router
from clarion.messages.endpoints import router as messages_router
from clarion.ratelimit.gate import ApiGate
from clarion.ratelimit.shared import build_buckets
from clarion.runner.helpers import HelperProcesses
from clarion.runner.pacing import Pacer
from clarion.runner.worker import build_worker
from clarion.storage.db import Database
from clarion.triggers.endpoints import router as triggers_router
from clarion.triggers.intake import TriggerIntake
from clarion.users.endpoints import router as users_router
from clarion.web import ERROR_RESPONSES, AppState, JSONResponse, error_response
from clarion.webhooks.endpoints import router as webhooks_router

log = logging.getLogger("clarion")


class RequestIdMiddleware:
    """Every response carries ``X-Request-ID`` (the caller's, if it sent a sane one)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = b""
        for name, value in scope["headers"]:
            if name == b"x-request-id" and 0 < len(value) <= 128 and value.isascii():
                request_id = value
                break
        if not request_id:
            request_id = os.urandom(12).hex().encode()
        scope.setdefault("state", {})["request_id"] = request_id.decode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id)]
            await send(message)

        await self.app(scope, receive, send_with_id)


class BodyLimitMiddleware:
    """Every request body is capped at ``limit`` bytes (CLARION_MAX_BODY_BYTES): a declared
    length over it is refused before reading, and a streamed body is cut off the moment it
    passes it. Either way the answer is the usual JSON error, 413 payload_too_large."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    def _error(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"The body is larger than {self.limit} bytes (CLARION_MAX_BODY_BYTES); send less.",
            limit=self.limit,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                error = self._error()
                await JSONResponse(error.to_body(), error.status_code)(scope, receive, send)
                return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                # Raised while the endpoint reads its body. FastAPI passes HTTPExceptions
                # through its body parsing (anything else becomes a 400), and the handler
                # below renders this one as the same 413 payload_too_large.
                raise HTTPException(413, self._error().message)
            return message

        await self.app(scope, counted, send)


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, **extra}}, status)


def _json_path(loc: Any) -> str:
    """('body', 'devices', 0, 'id') -> '$.devices[0].id' (query and path params keep a name)."""
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[1:]
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def _readable(message: str) -> str:
    """Pydantic prefixes our own validators' messages with 'Value error, '."""
    return message.removeprefix("Value error, ")


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ClarionError)
    async def clarion_error(_request: Request, exc: ClarionError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return _error(400, "invalid_json", "The body is not valid JSON; check its syntax.")
        details = [
            {"path": _json_path(e.get("loc", ())), "message": _readable(str(e.get("msg", "")))}
            for e in errors
        ]
        first = details[0] if details else {"path": "$", "message": "invalid request"}
        return _error(
            400,
            "invalid_request",
            f"{first['path']}: {first['message']}",
            path=first["path"],
            errors=details,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 413:
            limit = request.app.state.clarion.settings.max_body_bytes
            return _error(413, "payload_too_large", str(exc.detail), limit=limit)
        codes = {404: "not_found", 405: "method_not_allowed"}
        return _error(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail))

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def database_unavailable(request: Request, exc: DBAPIError) -> JSONResponse:
        # Unreachable, restarting, or locked past CLARION_DATABASE_LOCK_TIMEOUT_SECONDS:
        # nothing was committed (a trigger is answered 200 only after its commit).
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path,
                    type(exc.orig).__name__)  # fmt: skip
        return error_response(unavailable())

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error(
            500,
            "internal_error",
            "Clarion hit an unexpected error; it has been logged. Quote the X-Request-ID "
            "header when reporting it.",
        )


def create_app(
    settings: Settings | None = None,
    *,
    start_worker: bool | None = None,
    worker_processes: int = 0,
) -> FastAPI:
    """``worker_processes``: worker processes to run beside the embedded worker (`clarion
    serve` passes CLARION_WORKER_PROCESSES; see runner.helpers)."""
    settings = settings or get_settings()
    cache.configure(settings.cache_ttl_seconds)
    limits.configure(settings.max_properties, settings.max_property_depth,
                     settings.max_string_length)  # fmt: skip
    db = Database(
        settings.resolved_database_url(),
        settings.database_lock_timeout_seconds,
        background_checkpoints=True,
    )
    box = Box(load_key(settings))
    providers = build_registry(settings, db, box)
    run_worker = settings.embedded_worker if start_worker is None else start_worker
    helped = bool(worker_processes) and run_worker
    worker = build_worker(settings, db, box, providers, settings.worker_threads, helped=helped)
    metrics.watch_queue(db, worker.engine.name)
    runner = worker.runner
    notify = runner.notify if run_worker else (lambda: None)
    intake = TriggerIntake(db, worker.engine, notify)
    runner.pacer = Pacer(intake.idle_for, share=settings.worker_share_under_load)
    helpers = HelperProcesses(worker_processes if run_worker else 0, settings.worker_threads,
                              settings.worker_metrics_port)  # fmt: skip

    @asynccontextmanager
    async def lifespan(application: FastAPI) -> AsyncIterator[None]:
        if run_worker:
            worker.start()  # first: it resumes what the last server left running
            helpers.start()
        try:
            yield
        finally:
            helpers.stop()
            if run_worker:
                worker.stop()
            if application.state.clarion.gate is not None:
                await application.state.clarion.gate.close()  # keys' last use, buckets
            providers.close()
            db.dispose()

    app = FastAPI(
        title="Clarion",
        version=__version__,
        summary="Self-hosted API-triggered campaigns, Clix wire compatible.",
        lifespan=lifespan,
        default_response_class=JSONResponse,
        responses=ERROR_RESPONSES,
    )
    app.state.clarion = AppState(
        settings=settings, db=db, notify=notify, intake=intake, providers=providers, box=box,
        # Built here, so that a backend that cannot work (postgres on SQLite) fails at once.
        buckets=build_buckets(settings.rate_limit_backend, db,
                              settings.redis_url.get_secret_value()),
    )  # fmt: skip
    app.state.runner = runner
    app.state.webhooks = worker.webhooks
    with db.read() as session:  # while there is no admin, `clarion serve` prints a set-up link
        app.state.console_setup_token = "" if any_admin(session) else secrets.token_urlsafe(24)
    app.add_middleware(IdempotencyMiddleware, state=app.state.clarion)  # inside the body limit
    app.add_middleware(ApiGate, state=app.state.clarion)  # authenticates, then rate limits
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    app.add_middleware(RequestIdMiddleware)  # added last, so outermost: ids on every answer
    _install_error_handlers(app)

    app.include_router(triggers_router)  # first: the hot path is matched with the least work
    app.include_router(campaigns_router)
    app.include_router(users_router)
    app.include_router(delivery_router)
    app.include_router(events_router)
    app.include_router(messages_router)
    app.include_router(live_activities_router)
    app.include_router(providers_router)
    app.include_router(webhooks_router)
    app.include_router(inbox_router)
    app.include_router(keys_router)
    health.install(app)
    console.install(app)
    return app
