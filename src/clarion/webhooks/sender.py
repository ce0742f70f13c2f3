"""One signed POST to a checked destination: what both delivery-event webhooks and the
webhook channel send through."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import httpx

from clarion.webhooks import netguard, signing

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
USER_AGENT = "Clarion-Webhooks/1"


@dataclass(frozen=True, slots=True)
class Answer:
    status_code: int | None  # None: no HTTP answer (refused, network error, timeout)
    error: str | None
    duration_ms: int
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def client() -> httpx.Client:
    """Redirects are not followed: a redirect could lead anywhere the guard refuses."""
    return httpx.Client(timeout=TIMEOUT, follow_redirects=False, trust_env=False)


def post(
    http: httpx.Client,
    url: str,
    body: bytes,
    *,
    secret: str,
    msg_id: str,
    headers: Mapping[str, str],
    allowed: Sequence[netguard.Network],
) -> Answer:
    started = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        target = netguard.resolve(url, allowed)
    except netguard.UnsafeDestination as exc:
        return Answer(None, f"refused: {exc}", took())
    signed = signing.headers(secret, msg_id, int(time.time()), body)
    all_headers = {
        **headers,
        "host": target.host,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        **signed,
    }
    extensions = {"sni_hostname": target.hostname}
    try:
        response = http.post(target.url, content=body, headers=all_headers, extensions=extensions)
    except httpx.HTTPError as exc:
        return Answer(None, f"{type(exc).__name__}: {exc}"[:500], took())
    retry_after = None
    if value := response.headers.get("retry-after", ""):
        retry_after = float(value) if value.isdigit() else None
    error = None if response.is_success else f"HTTP {response.status_code}"
    return Answer(response.status_code, error, took(), retry_after)
