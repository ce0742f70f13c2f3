"""A local FCM HTTP v1 server, speaking the real protocol: an OAuth2 token endpoint (HTTP/1.1,
as Google's) that checks the service account's signed JWT assertion (RS256) and issues bearer
tokens, and ``POST /v1/projects/{id}/messages:send`` over HTTP/2 (cleartext, prior knowledge)
that checks the bearer token and the v1 message JSON, answers with a message name, and
returns FCM's errors for scripted tokens:

    unregistered-*  404 UNREGISTERED          badtoken-*     400 INVALID_ARGUMENT (message.token)
    quota-*         429 QUOTA_EXCEEDED        quota120-*     the same with Retry-After: 120
    unavailable-*   503 UNAVAILABLE           internal-*     500 INTERNAL
    mismatch-*      403 SENDER_ID_MISMATCH    thirdparty-*   401 THIRD_PARTY_AUTH_ERROR
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.fakes import h2server, http1

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GOOGLE_AUDIENCE = "https://oauth2.googleapis.com/token"  # what Google's token endpoint expects
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
SCRIPTED = {
    "unregistered": (404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found."),
    "badtoken": (400, "INVALID_ARGUMENT", "INVALID_ARGUMENT",
                 "The registration token is not a valid FCM registration token"),
    "quota": (429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded."),
    "quota120": (429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded."),
    "unavailable": (503, "UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable."),
    "internal": (500, "INTERNAL", "INTERNAL", "Internal error encountered."),
    "mismatch": (403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", "SenderId mismatch"),
    "thirdparty": (401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR", "Auth error from APNS"),
}  # fmt: skip


@dataclass
class FakeFcm:
    url: str = ""  # messages:send, HTTP/2
    token_url: str = ""  # the OAuth2 endpoint's server, HTTP/1.1
    fixed_token: str = ""  # issue this token every time (a benchmark's faster fake checks it)
    project_id: str = "fake-project"
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    tokens: set[str] = field(default_factory=set)
    token_requests: int = 0
    messages: list[dict[str, Any]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # why requests were refused
    keep_messages: bool = True  # a benchmark only counts them
    sent: int = 0
    requests: int = 0  # messages:send calls, answered or refused

    def service_account(self) -> dict[str, Any]:
        pem = self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return {
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": "key-1",
            "private_key": pem,
            "client_email": f"clarion@{self.project_id}.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": f"{self.token_url}/token",
        }

    # -- the OAuth2 token endpoint -----------------------------------------------------------
    def issue(self, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        assertion = (form.get("assertion") or [""])[0]
        grant = (form.get("grant_type") or [""])[0]
        if grant != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return self._refuse(400, f"grant_type {grant!r}")
        try:
            head, claims, signature = (_b64(p) for p in assertion.split("."))
            self.key.public_key().verify(
                signature,
                assertion.rsplit(".", 1)[0].encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
            header, body = json.loads(head), json.loads(claims)
        except Exception as exc:
            return self._refuse(400, f"assertion: {type(exc).__name__}")
        if header.get("alg") != "RS256" or body.get("aud") not in (
            GOOGLE_AUDIENCE,
            f"{self.token_url}/token",
        ):
            return self._refuse(400, "assertion header or audience")
        if SCOPE not in str(body.get("scope", "")).split() or body.get("exp", 0) < time.time():
            return self._refuse(400, "assertion scope or expiry")
        token = self.fixed_token or f"ya29.fake-{uuid.uuid4().hex}"
        self.tokens.add(token)
        self.token_requests += 1
        return 200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}

    # -- messages:send -----------------------------------------------------------------------
    def send(self, path: str, auth: str, body: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
        self.requests += 1
        if path != f"/v1/projects/{self.project_id}/messages:send":
            return *self._error(404, "NOT_FOUND", None, f"no such path {path}"), {}
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            self.refused.append("bearer token")
            return *self._error(401, "UNAUTHENTICATED", None, "invalid credentials"), {}
        problem = _check_message(body)
        if problem:
            self.refused.append(problem)
            return *self._error(400, "INVALID_ARGUMENT", None, problem), {}
        message = body["message"]
        kind = message["token"].split("-", 1)[0]
        if kind in SCRIPTED:
            status, rpc, code, text = SCRIPTED[kind]
            headers = {"Retry-After": "120"} if kind == "quota120" else {}
            return *self._error(status, rpc, code, text, token=kind == "badtoken"), headers
        self.sent += 1
        if self.keep_messages:
            self.messages.append(message)
        name = f"projects/{self.project_id}/messages/{self.sent}"
        return 200, {"name": name}, {}

    def _error(
        self, status: int, rpc: str, code: str | None, text: str, token: bool = False
    ) -> tuple[int, dict[str, Any]]:
        details: list[dict[str, Any]] = []
        if code:
            details.append({"@type": FCM_ERROR, "errorCode": code})
        if token:
            details.append(
                {
                    "@type": BAD_REQUEST,
                    "fieldViolations": [
                        {"field": "message.token", "description": "Invalid registration token"}
                    ],
                }
            )
        return status, {"error": {"code": status, "message": text, "status": rpc,
                                  "details": details}}  # fmt: skip

    def _refuse(self, status: int, why: str) -> tuple[int, dict[str, Any]]:
        self.refused.append(why)
        return status, {"error": "invalid_grant", "error_description": why}


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _check_message(body: Any) -> str | None:
    """The v1 message as FCM checks it (the parts Clarion sends)."""
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, dict):
        return "message is required"
    targets = [k for k in ("token", "topic", "condition") if k in message]
    if targets != ["token"] or not isinstance(message["token"], str) or not message["token"]:
        return "exactly one target: a non-empty token"
    note = message.get("notification", {})
    if not isinstance(note, dict) or any(not isinstance(v, str) for v in note.values()):
        return "notification fields are strings"
    if set(note) - {"title", "body", "image"}:
        return f"unknown notification fields {sorted(set(note) - {'title', 'body', 'image'})}"
    android = message.get("android", {})
    if set(android) - {"priority", "ttl", "collapse_key", "notification"}:
        return f"unknown android fields {sorted(android)}"
    if "priority" in android and android["priority"] not in ("NORMAL", "HIGH"):
        return "android.priority is NORMAL or HIGH"
    if "ttl" in android and not re.fullmatch(r"\d+(\.\d{1,9})?s", str(android["ttl"])):
        return "android.ttl is a duration like 3600s"
    apns = message.get("apns", {})
    if set(apns) - {"headers", "payload"}:
        return f"unknown apns fields {sorted(apns)}"
    if any(not isinstance(v, str) for v in apns.get("headers", {}).values()):
        return "apns header values are strings"
    data = message.get("data", {})
    if not isinstance(data, dict) or any(not isinstance(v, str) for v in data.values()):
        return "data values are strings"
    if len(json.dumps(message).encode()) > 4096:
        return "message too big"
    return None


@contextmanager
def serve() -> Iterator[FakeFcm]:
    fake = FakeFcm()
    lock = threading.Lock()

    def token(method: str, path: str, headers: dict[str, str], raw: bytes) -> Any:
        if path != "/token":
            return 404, {}, {"error": "messages:send is served over HTTP/2"}
        with lock:
            status, body = fake.issue(parse_qs(raw.decode()))
        return status, {}, body

    def send(method: str, path: str, headers: dict[str, str], raw: bytes) -> Any:
        if path == "/stats":
            return (
                200,
                {},
                json.dumps({"messages": fake.sent, "refused": fake.refused[:5]}).encode(),
            )
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        with lock:
            status, body, extra = fake.send(path, headers.get("authorization", ""), parsed)
        return status, extra, json.dumps(body).encode()

    with http1.serve_json(token, keep_alive=True) as token_url, h2server.running(send) as url:
        fake.token_url, fake.url = token_url, url
        yield fake
