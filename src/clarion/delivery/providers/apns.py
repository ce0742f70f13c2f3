"""APNs direct: HTTP/2 over TLS with token authentication.

The project's credentials are an APNs auth key (the ``.p8`` file: an EC P-256 private key),
its key id, the team id and the app's bundle id (the topic). Each request carries an ES256
JWT made from them; the JWT is reused and made afresh every 40 minutes (Apple accepts one
between 20 and 60 minutes old, and refuses refreshing more often than every 20). One
long-lived HTTP/2 connection per client, requests multiplexed on it.

Answers (https://developer.apple.com/documentation/usernotifications/handling-notification-responses-from-apns):
410 (Unregistered, ExpiredToken) and 400 BadDeviceToken / DeviceTokenNotForTopic drop the
token; 429 TooManyRequests and 5xx retry; 403 ExpiredProviderToken / InvalidProviderToken
make a fresh JWT and retry; other 400s and 403s fail the message with the reason.
"""

from __future__ import annotations

import asyncio
import base64
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from clarion.delivery.providers import overrides
from clarion.delivery.providers.base import OutboundPush, SendResult
from clarion.delivery.providers.h2client import H2Client, H2Error, Response
from clarion.delivery.providers.http2 import Http2Provider

TOKEN_LIFETIME = 40 * 60  # seconds a JWT is reused
PAYLOAD_LIMIT = 4096
INVALID_TOKEN = ("BadDeviceToken", "Unregistered", "DeviceTokenNotForTopic", "ExpiredToken")
STALE_JWT = ("ExpiredProviderToken", "InvalidProviderToken")
Secrets = Callable[[str], Mapping[str, Any] | None]  # project id -> the APNs credentials


def provider_token(key_pem: str, key_id: str, team_id: str, now: float | None = None) -> str:
    """The ES256 JWT APNs expects: header {alg, kid}, claims {iss, iat}, and the signature as
    the raw 64-byte r||s (JOSE), not the DER form cryptography returns."""
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("an APNs auth key is an EC P-256 private key (.p8)")
    header = _b64(orjson.dumps({"alg": "ES256", "kid": key_id}))
    claims = _b64(orjson.dumps({"iss": team_id, "iat": int(now or time.time())}))
    signing_input = f"{header}.{claims}".encode()
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    signature = _b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    return f"{header}.{claims}.{signature}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def apns_payload(message: OutboundPush) -> dict[str, Any]:
    alert: dict[str, str] = {"title": message.title, "body": message.body}
    aps: dict[str, Any] = {"alert": alert, "mutable-content": 1}
    o = message.overrides.apns if message.overrides is not None else None
    aps.update(overrides.aps_extra(o))
    return {"aps": aps, "clix": message.data}


class ApnsProvider(Http2Provider):
    name = "apns"

    def __init__(
        self,
        base_url: str,
        secrets: Secrets,
        *,
        verify: Any = True,
        concurrency: int = 64,
        timeout: float = 10.0,
    ) -> None:
        super().__init__(concurrency)
        self.base_url = base_url.rstrip("/")
        self.secrets = secrets
        self.verify = verify
        self.timeout = timeout
        self._jwts: dict[str, tuple[str, float, str]] = {}  # project: (key id, made at, jwt)
        self._lock = threading.Lock()

    def make_client(self) -> H2Client:
        return H2Client(self.base_url, verify=self.verify, timeout=self.timeout)

    async def _send_all(self, batch: Sequence[OutboundPush]) -> list[SendResult]:
        credentials = {  # read once a batch, off the event loop (the store reads the database)
            project_id: await asyncio.to_thread(self.secrets, project_id)
            for project_id in {m.project_id for m in batch}
        }

        async def one(message: OutboundPush) -> SendResult:
            async with self.gate(message.project_id):
                return await self._send_one(message, credentials[message.project_id])

        return list(await asyncio.gather(*(one(m) for m in batch)))

    async def _send_one(
        self, message: OutboundPush, credentials: Mapping[str, Any] | None, retried: bool = False
    ) -> SendResult:
        if credentials is None:
            return self._result(message, "failed", reason="apns: no credentials for this project")
        body = orjson.dumps(apns_payload(message))
        if len(body) > PAYLOAD_LIMIT:
            return self._result(message, "failed", reason=f"payload_too_large: {len(body)} bytes")
        headers = {
            "authorization": f"bearer {self._jwt(message.project_id, credentials)}",
            "apns-topic": str(credentials["topic"]),
            "apns-push-type": "alert",
            "apns-priority": "10",
            "apns-expiration": "0",
            "apns-collapse-id": message.message_id[:64],
        }
        if message.overrides is not None:
            headers.update(overrides.apns_headers(message.overrides.apns))
        try:
            response = await self.client().post(
                f"/3/device/{message.push_token}", content=body, headers=headers
            )
        except H2Error as exc:
            return self._result(message, "retryable", reason=f"network: {exc}",
                                retry_after=_jitter(5.0))  # fmt: skip
        if response.status_code == 200:
            return SendResult(message.message_id, "sent", provider=self.name, response_code="200",
                              provider_message_id=response.headers.get("apns-id"))  # fmt: skip
        reason_code = _reason(response)
        reason = f"apns {response.status_code} {reason_code}".strip()
        code = f"{response.status_code} {reason_code}".strip()
        if response.status_code == 410 or reason_code in INVALID_TOKEN:
            return self._result(message, "invalid_recipient", reason=reason, response_code=code)
        if reason_code in STALE_JWT:
            self._forget(message.project_id)
            if not retried:  # a fresh JWT at once, once
                return await self._send_one(message, credentials, retried=True)
            return self._result(message, "retryable", reason=reason, retry_after=60.0,
                                response_code=code)  # fmt: skip
        if response.status_code == 429 or response.status_code >= 500:
            return self._result(message, "retryable", reason=reason, retry_after=_jitter(10.0),
                                response_code=code)  # fmt: skip
        return self._result(message, "failed", reason=reason, response_code=code)

    def _jwt(self, project_id: str, credentials: Mapping[str, Any]) -> str:
        key_id = str(credentials["key_id"])
        with self._lock:
            cached = self._jwts.get(project_id)
            if cached is None or cached[0] != key_id or time.time() - cached[1] > TOKEN_LIFETIME:
                token = provider_token(str(credentials["key"]), key_id, str(credentials["team_id"]))
                cached = (key_id, time.time(), token)
                self._jwts[project_id] = cached
            return cached[2]

    def _forget(self, project_id: str) -> None:
        with self._lock:
            self._jwts.pop(project_id, None)

    def _result(self, message: OutboundPush, outcome: Any, **kw: Any) -> SendResult:
        return SendResult(message.message_id, outcome, provider=self.name, **kw)


def _reason(response: Response) -> str:
    try:
        return str(response.json().get("reason", ""))
    except ValueError:
        return ""


def _jitter(base: float) -> float:
    return base * (0.5 + random.random())
