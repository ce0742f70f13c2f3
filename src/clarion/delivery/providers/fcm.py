"""FCM HTTP v1: one request per message, over a pooled HTTP/2 client.

Credentials are the project's Firebase service account (stored sealed; see clarion.credentials).
google-auth turns it into an OAuth2 access token, kept and refreshed before it expires. The
message carries a ``notification`` (title, body, image) and ``data.clix``: the exact Clix
payload, as a JSON string, for the Clix SDKs to display and track.

Errors (https://firebase.google.com/docs/cloud-messaging/send/v1-api#handling-errors):
UNREGISTERED, and INVALID_ARGUMENT about the token, drop the device's token; QUOTA_EXCEEDED
and 429 retry after at least 60 s (or a longer Retry-After); UNAVAILABLE, INTERNAL and other
5xx retry after a jittered backoff; SENDER_ID_MISMATCH and THIRD_PARTY_AUTH_ERROR fail the
message with the reason. A network error retries. Nothing is retried here: the runner
schedules the retry, so a worker never sleeps.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import google.auth.exceptions
import google.auth.transport
import httpx
import orjson
from google.oauth2 import service_account

from clarion.delivery.providers import overrides
from clarion.delivery.providers.base import OutboundPush, SendResult
from clarion.delivery.providers.h2client import H2Client, H2Error, Response
from clarion.delivery.providers.http2 import Http2Provider

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
PAYLOAD_LIMIT = 4096
QUOTA_WAIT = 60.0
PERMANENT = ("SENDER_ID_MISMATCH", "THIRD_PARTY_AUTH_ERROR")  # configuration: retrying cannot help
Secrets = Callable[[str], Mapping[str, Any] | None]  # project id -> service account


class FcmProvider(Http2Provider):
    name = "fcm"

    def __init__(
        self,
        base_url: str,
        secrets: Secrets,
        *,
        concurrency: int = 64,
        timeout: float = 10.0,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        super().__init__(concurrency)
        self.base_url = base_url.rstrip("/")
        self.secrets = secrets
        self.timeout = timeout
        self.verify = verify  # https: TLS trust; an http:// base is cleartext HTTP/2 (a fake)
        self._tokens: dict[str, tuple[str, service_account.Credentials]] = {}
        self._token_lock = threading.Lock()

    def make_client(self) -> H2Client:
        return H2Client(self.base_url, verify=self.verify, timeout=self.timeout)

    async def _send_all(self, batch: Sequence[OutboundPush]) -> list[SendResult]:
        routes: dict[str, tuple[bytes, list[tuple[bytes, bytes]]] | SendResult] = {}
        for project_id in {m.project_id for m in batch}:
            auth = await asyncio.to_thread(self._access, project_id)
            if isinstance(auth, SendResult):  # no usable credentials: the same for all
                routes[project_id] = auth
                continue
            fcm_project, token = auth  # the path and headers, encoded once per batch
            routes[project_id] = (
                f"/v1/projects/{fcm_project}/messages:send".encode(),
                [(b"authorization", f"Bearer {token}".encode()),
                 (b"content-type", b"application/json")],
            )  # fmt: skip
        client = self.client()
        return list(
            await asyncio.gather(*(self._send_one(client, m, routes[m.project_id]) for m in batch))
        )

    async def _send_one(
        self,
        client: H2Client,
        message: OutboundPush,
        route: tuple[bytes, list[tuple[bytes, bytes]]] | SendResult,
    ) -> SendResult:
        if isinstance(route, SendResult):
            return SendResult(message.message_id, route.outcome, reason=route.reason,
                              retry_after=route.retry_after, provider=self.name)  # fmt: skip
        body = orjson.dumps({"message": fcm_message(message)})
        if len(body) > PAYLOAD_LIMIT + 64:  # the envelope around the FCM payload
            return self._result(message, "failed", reason=f"payload_too_large: {len(body)} bytes")
        async with self.gate(message.project_id):
            try:
                response = await client.post_encoded(route[0], body, route[1])
            except H2Error as exc:
                return self._result(message, "retryable", reason=f"network: {exc}",
                                    retry_after=_jitter(5.0))  # fmt: skip
        return self._classify(message, response)

    def _classify(self, message: OutboundPush, response: Response) -> SendResult:
        status = response.status_code
        if status == 200:
            name = str(response.json().get("name", ""))
            return SendResult(message.message_id, "sent", provider_message_id=name,
                              provider=self.name, reason=None, response_code="200")  # fmt: skip
        code, detail, token_field = _error(response)
        reason = f"fcm {status} {code}: {detail}".strip()
        kw = {"response_code": f"{status} {code}".strip()}
        if code in PERMANENT:
            return self._result(message, "failed", reason=reason, **kw)
        if code == "UNREGISTERED" or (code == "INVALID_ARGUMENT" and token_field):
            return self._result(message, "invalid_recipient", reason=reason, **kw)
        if code == "QUOTA_EXCEEDED" or status == 429:
            wait = max(QUOTA_WAIT, _retry_after(response) or 0.0)
            return self._result(message, "retryable", reason=reason, retry_after=wait, **kw)
        if status == 401:  # our access token was refused: a fresh one at the next try
            self._forget(message.project_id)
        if status >= 500 or code in ("UNAVAILABLE", "INTERNAL") or status == 401:
            wait = max(_retry_after(response) or 0.0, _jitter(10.0))
            return self._result(message, "retryable", reason=reason, retry_after=wait, **kw)
        return self._result(message, "failed", reason=reason, **kw)

    def _result(self, message: OutboundPush, outcome: Any, **kw: Any) -> SendResult:
        return SendResult(message.message_id, outcome, provider=self.name, **kw)

    # -- credentials -------------------------------------------------------------------------
    def _access(self, project_id: str) -> tuple[str, str] | SendResult:
        """(FCM project id, access token), or the result every message of the project gets."""
        try:
            account = self.secrets(project_id)
        except Exception as exc:  # a key that does not open the stored credentials, ...
            return SendResult("", "retryable", reason=f"fcm credentials: {exc}", retry_after=60.0)
        if account is None:
            return SendResult("", "failed", reason="fcm: no credentials for this project "
                              "(PUT /api/v1/providers/fcm)")  # fmt: skip
        fingerprint = str(account.get("private_key_id") or account.get("client_email"))
        with self._token_lock:
            cached = self._tokens.get(project_id)
            if cached is None or cached[0] != fingerprint:
                creds = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                    dict(account), scopes=[FCM_SCOPE]
                )
                cached = (fingerprint, creds)
                self._tokens[project_id] = cached
            creds = cached[1]
            if not creds.valid:  # also true shortly before expiry: refreshed ahead of it
                try:
                    creds.refresh(_TokenRequest(self.timeout))  # type: ignore[no-untyped-call]
                except Exception as exc:
                    return SendResult("", "retryable", reason=f"fcm oauth: {_safe(exc)}",
                                      retry_after=_jitter(30.0))  # fmt: skip
            return str(account["project_id"]), str(creds.token)

    def _forget(self, project_id: str) -> None:
        with self._token_lock:
            self._tokens.pop(project_id, None)


def fcm_message(message: OutboundPush) -> dict[str, Any]:
    notification = {"title": message.title, "body": message.body}
    if message.image_url:
        notification["image"] = message.image_url
    return {
        "token": message.push_token,
        "notification": notification,
        "data": {"clix": orjson.dumps(message.data).decode()},
        **overrides.fcm_blocks(message.overrides),
    }


def _error(response: Response) -> tuple[str, str, bool]:
    """(error code, message, whether the token is the problem)."""
    try:
        error = response.json().get("error", {})
    except ValueError:
        return "", response.text[:200], False
    code = str(error.get("status", ""))
    token_field = False
    for detail in error.get("details", []) or []:
        if detail.get("errorCode"):
            code = str(detail["errorCode"])
        for violation in detail.get("fieldViolations", []) or []:
            token_field = token_field or "token" in str(violation.get("field", ""))
    message = str(error.get("message", ""))[:200]
    return code, message, token_field or "registration token" in message.lower()


def _retry_after(response: Response) -> float | None:
    try:
        return float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None


def _jitter(base: float) -> float:
    return base * (0.5 + random.random())


def _safe(exc: Exception) -> str:
    """An error's kind and first line, without anything that could hold a credential."""
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"


class _TokenRequest(google.auth.transport.Request):
    """google-auth's transport interface over httpx (blocking: refreshes are rare)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> _TokenResponse:
        try:
            response = httpx.request(method, url, content=body, headers=dict(headers or {}),
                                     timeout=timeout or self.timeout)  # fmt: skip
        except httpx.HTTPError as exc:
            raise google.auth.exceptions.TransportError(type(exc).__name__) from None  # type: ignore[no-untyped-call]
        return _TokenResponse(response)


class _TokenResponse(google.auth.transport.Response):
    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    @property
    def data(self) -> bytes:
        return self._response.content
