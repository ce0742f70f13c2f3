"""A local APNs, speaking the real protocol: HTTP/2 over TLS (a self-signed certificate made
at start, ALPN h2), ``POST /3/device/{token}``, the provider JWT checked (ES256 signature
with the key's public half, kid, iss, iat) and the headers checked (apns-topic,
apns-push-type). Scripted tokens answer Apple's errors:

    unregistered-*  410 Unregistered        baddevice-*  400 BadDeviceToken
    toomany-*       429 TooManyRequests     internal-*   500 InternalServerError
    badtopic-*      400 BadTopic
"""

from __future__ import annotations

import base64
import json
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tests.fakes import h2server, tlscert

SCRIPTED = {
    "unregistered": (410, "Unregistered"),
    "baddevice": (400, "BadDeviceToken"),
    "toomany": (429, "TooManyRequests"),
    "internal": (500, "InternalServerError"),
    "badtopic": (400, "BadTopic"),
}


@dataclass
class FakeApns:
    url: str = ""
    ca_file: str = ""
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    key_id: str = "KEY1234567"
    team_id: str = "TEAM123456"
    topic: str = "com.example.shop"
    pushes: list[dict[str, Any]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    jwts: set[str] = field(default_factory=set)
    expire_next: bool = False  # answer the next request 403 ExpiredProviderToken

    def credentials(self) -> dict[str, str]:
        pem = self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()  # fmt: skip
        return {"key": pem, "key_id": self.key_id, "team_id": self.team_id, "topic": self.topic}

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
        if method != "POST" or not path.startswith("/3/device/"):
            return self._refuse(404, "BadPath", f"{method} {path}")
        problem = self._check_jwt(headers.get("authorization", ""))
        if problem:
            return self._refuse(403, "InvalidProviderToken", problem)
        if self.expire_next:
            self.expire_next = False
            return 403, {}, json.dumps({"reason": "ExpiredProviderToken"}).encode()
        if headers.get("apns-topic") != self.topic:
            return self._refuse(400, "BadTopic" if headers.get("apns-topic") else "MissingTopic",
                                "topic")  # fmt: skip
        if headers.get("apns-push-type") not in ("alert", "background"):
            return self._refuse(400, "InvalidPushType", "push type")
        token = path.removeprefix("/3/device/")
        kind = token.split("-", 1)[0]
        if kind in SCRIPTED:
            status, reason = SCRIPTED[kind]
            answer: dict[str, Any] = {"reason": reason}
            if status == 410:
                answer["timestamp"] = int(time.time() * 1000)
            return status, {}, json.dumps(answer).encode()
        payload = json.loads(body)
        if "aps" not in payload or len(body) > 4096:
            return self._refuse(
                400, "PayloadTooLarge" if len(body) > 4096 else "BadPayload", "body"
            )
        self.pushes.append({"token": token, "payload": payload, "headers": headers})
        return 200, {"apns-id": str(uuid.uuid4()).upper()}, b""

    def _check_jwt(self, authorization: str) -> str | None:
        if not authorization.startswith("bearer "):
            return "no bearer token"
        token = authorization[7:]
        try:
            head, claims, signature = token.split(".")
            header = json.loads(_unb64(head))
            body = json.loads(_unb64(claims))
            raw = _unb64(signature)
            der = encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                       int.from_bytes(raw[32:], "big"))  # fmt: skip
            self.key.public_key().verify(der, f"{head}.{claims}".encode(),
                                         ec.ECDSA(hashes.SHA256()))  # fmt: skip
        except Exception as exc:
            return f"jwt: {type(exc).__name__}"
        if header != {"alg": "ES256", "kid": self.key_id} or body.get("iss") != self.team_id:
            return "jwt header or issuer"
        if not time.time() - 3600 < body.get("iat", 0) <= time.time() + 60:
            return "jwt iat"
        self.jwts.add(token)
        return None

    def _refuse(self, status: int, reason: str, why: str) -> Any:
        self.refused.append(why)
        return status, {}, json.dumps({"reason": reason}).encode()


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


@contextmanager
def serve() -> Iterator[FakeApns]:
    fake = FakeApns()
    with tempfile.TemporaryDirectory() as tmp:
        context, fake.ca_file = tlscert.server_context(Path(tmp), alpn=["h2"])
        with h2server.running(fake.handle, tls=context) as url:
            fake.url = url
            yield fake
