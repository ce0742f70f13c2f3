"""The API's front door: authenticate once, then apply the rate limits.

For every ``/api/v1/`` request but the health check:

1. A source address that has failed authentication too often (CLARION_AUTH_FAILURES_PER_
   MINUTE) gets 429 before its credentials are even looked at.
2. The Clix headers are checked (the key cache first, the database on a miss). A failure
   counts against the address and gets the usual 401.
3. The project's token bucket (its own limit, or CLARION_RATE_LIMIT_PER_SECOND) gives or
   refuses a token. Refused: 429, ``{"error":"Too Many Requests"}`` and ``Retry-After``, as
   Clix answers. Every answer from here on carries ``X-RateLimit-Limit``, ``-Remaining`` and
   ``-Reset`` (unix seconds).
   The buckets live in this process, or in Redis or PostgreSQL so that the limits hold
   across every API process (CLARION_RATE_LIMIT_BACKEND; ``ratelimit.shared``).
4. The principal goes to the endpoint through the request state (``web.principal_from``),
   and the key's last use is noted, written at most once a minute per key.

If the database cannot be reached the answer is 503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clarion.auth import service as auth
from clarion.errors import AuthenticationError, ClarionError, unavailable
from clarion.ratelimit.bucket import Buckets, Decision
from clarion.storage.models import utcnow
from clarion.web import error_response

log = logging.getLogger("clarion.ratelimit")
TOO_MANY = orjson.dumps({"error": "Too Many Requests"})
TOUCH_EVERY = 60.0  # seconds between writes of a key's last use


@dataclass(frozen=True, slots=True)
class Refused:
    decision: Decision
    limit_headers: bool  # the project's X-RateLimit-* (not for a blocked address)


class ApiGate:
    def __init__(self, app: ASGIApp, state: Any) -> None:
        self.app = app
        self.state = state  # the AppState (db, settings)
        # Projects' and source addresses' buckets, in one store (keys prefixed p:, a:).
        self.buckets: Buckets = state.buckets
        self._used: dict[str, Any] = {}  # key id: last use, not yet written
        self._touched = time.monotonic()
        state.gate = self  # the lifespan flushes the last-use times at shutdown

    def _guarded(self, scope: Scope) -> bool:
        if scope["type"] != "http":  # lifespan and websocket scopes have no path to check
            return False
        path: str = scope["path"]
        return path.startswith("/api/v1/") and not path.startswith("/api/v1/health")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._guarded(scope):
            await self.app(scope, receive, send)
            return
        try:
            admitted = await self._admit(scope)
        except ClarionError as exc:  # 401, or 503 when the database cannot be reached
            await error_response(exc)(scope, receive, send)
            return
        except (RedisError, DBAPIError, OSError) as exc:  # the shared bucket store
            log.warning("rate-limit store unavailable: %s", type(exc).__name__)
            await error_response(unavailable("the rate-limit store"))(scope, receive, send)
            return
        if isinstance(admitted, Refused):
            await _too_many(send, admitted.decision, limit_headers=admitted.limit_headers)
            return
        principal, decision = admitted
        scope.setdefault("state", {})["principal"] = principal
        self._note_use(principal.key_id)
        extra = decision.headers()

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_limits)

    async def _admit(self, scope: Scope) -> tuple[auth.Principal, Decision] | Refused:
        settings = self.state.settings
        address = scope["client"][0] if scope.get("client") else "unknown"
        per_minute = settings.auth_failures_per_minute
        blocked = await self.buckets.blocked("a:" + address, per_minute / 60, per_minute)
        if blocked is not None:
            return Refused(blocked, limit_headers=False)
        try:
            principal, limit = await self._authenticate(scope)
        except AuthenticationError:
            await self.buckets.take("a:" + address, per_minute / 60, per_minute)
            raise
        decision = await self.buckets.take("p:" + principal.project_id, limit)
        if not decision.allowed:
            return Refused(decision, limit_headers=True)
        return principal, decision

    async def _authenticate(self, scope: Scope) -> tuple[auth.Principal, int]:
        project_id = api_key = ""
        for name, value in scope["headers"]:
            if name == b"x-clix-project-id":
                project_id = value.decode("latin-1")
            elif name == b"x-clix-api-key":
                api_key = value.decode("latin-1")
        default = self.state.settings.rate_limit_per_second
        principal = auth.cached_principal(project_id, api_key)
        if principal is not None:
            limit = auth.cached_rate_limit(principal.project_id)
            if limit is not None:
                return principal, limit or default

        def lookup() -> tuple[auth.Principal, int]:
            try:
                with self.state.db.read() as session:
                    found = principal or auth.authenticate(session, project_id, api_key)
                    return found, auth.rate_limit(session, found.project_id) or default
            except DBAPIError as exc:
                log.warning("database unavailable while authenticating: %s", exc.orig)
                raise unavailable() from None

        # SQLite reads are short and local: the event loop is cheaper than a thread hand-off.
        return lookup() if self.state.db.is_sqlite else await run_in_threadpool(lookup)

    def _note_use(self, key_id: str) -> None:
        self._used[key_id] = utcnow()
        now = time.monotonic()
        if now - self._touched >= TOUCH_EVERY:
            self._touched = now
            used, self._used = self._used, {}
            asyncio.get_running_loop().run_in_executor(None, self._touch, used)

    def _touch(self, used: dict[str, Any]) -> None:
        try:
            with self.state.db.write() as session:
                auth.touch_keys(session, used)
        except Exception:  # best effort: the next minute writes again
            log.warning("could not record keys' last use", exc_info=True)

    def flush(self) -> None:
        """Write the pending last-use times (at shutdown)."""
        used, self._used = self._used, {}
        if used:
            self._touch(used)

    async def close(self) -> None:
        self.flush()
        await self.buckets.close()


async def _too_many(send: Send, decision: Decision, *, limit_headers: bool) -> None:
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(TOO_MANY)).encode()),
               (b"retry-after", str(decision.retry_after).encode())]  # fmt: skip
    if limit_headers:
        headers += decision.headers()
    await send({"type": "http.response.start", "status": 429, "headers": headers})
    await send({"type": "http.response.body", "body": TOO_MANY})
