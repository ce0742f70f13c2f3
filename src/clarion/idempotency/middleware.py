"""Idempotency-Key for the other POSTs that create or send (``messages:send``, ``users``,
``live-activities:start``): an ASGI middleware around the endpoint. It claims the key before
the endpoint runs, stores a 2xx answer after it (in its own commit: unlike the trigger call,
whose answer is stored with the trigger, a crash between the two leaves the claim to be
taken over after a minute), and releases the key for any other answer, so a refused request
stores nothing. The trigger call has its own, atomic path (triggers.endpoints)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clarion.auth.service import Principal
from clarion.errors import ClarionError, PayloadTooLarge
from clarion.idempotency import service
from clarion.web import error_response

PATHS = re.compile(r"^/api/v1/(messages:send|users|live-activities:start)$")


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp, state: Any) -> None:
        self.app = app
        self.state = state  # the AppState (db, settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not PATHS.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        # The API gate outside this middleware has authenticated the caller: keys belong to
        # its project, and nothing is claimed or replayed for an unauthenticated request.
        principal = scope.get("state", {}).get("principal")
        project_id = principal.project_id if isinstance(principal, Principal) else ""
        try:
            key = service.checked_key(headers.get(service.HEADER))
        except ClarionError as exc:
            await error_response(exc)(scope, receive, send)
            return
        if key is None or not project_id:
            await self.app(scope, receive, send)
            return
        body = bytearray()
        try:
            while True:  # bounded by the body-limit middleware outside this one
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
        except HTTPException as exc:  # over the limit (streamed without a length)
            await error_response(PayloadTooLarge(str(exc.detail)))(scope, receive, send)
            return
        print_ = service.fingerprint("POST", scope["path"], bytes(body))
        ttl = timedelta(hours=self.state.settings.idempotency_ttl_hours)

        def begin() -> service.Claimed | service.Replay:
            with self.state.db.write() as session:
                return service.begin(session, project_id, key, print_, ttl)

        try:
            outcome = await run_in_threadpool(begin)
        except ClarionError as exc:
            await error_response(exc)(scope, receive, send)
            return
        if isinstance(outcome, service.Replay):
            stored = [(k.encode(), v.encode()) for k, v in outcome.headers.items()]
            await send({"type": "http.response.start", "status": outcome.status,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"idempotency-replayed", b"true"), *stored]})  # fmt: skip
            await send({"type": "http.response.body", "body": outcome.body})
            return

        sent = False

        async def replay_body() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        try:
            await self.app(scope, replay_body, capture)
        except BaseException:
            await run_in_threadpool(self._release, outcome)
            raise
        status = int(start.get("status", 500))
        answer = b"".join(chunks)

        def settle() -> None:
            with self.state.db.write() as session:
                if 200 <= status < 300:
                    service.complete(session, outcome, status, answer, {}, None)
                else:
                    service.release(session, outcome)

        await run_in_threadpool(settle)
        await send(start)
        await send({"type": "http.response.body", "body": answer})

    def _release(self, claimed: service.Claimed) -> None:
        with self.state.db.write() as session:
            service.release(session, claimed)
