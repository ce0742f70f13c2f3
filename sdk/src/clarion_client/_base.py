"""What Client and AsyncClient share: configuration, request bodies, answers and errors,
dedupe bookkeeping and log records. Only the sending loop differs (blocking or awaited)."""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from clarion_client import errors
from clarion_client.config import Credentials, redact, resolve
from clarion_client.dedupe import DEFAULT_TTL, PENDING, DedupeStore
from clarion_client.plan import Plan
from clarion_client.retry import Policy, RetryPolicy

log = logging.getLogger("clarion_client")
DEFAULT_TIMEOUT = 10.0  # seconds for a whole call, retries included
DEDUPE_POLL = 0.1  # seconds between looks at a dedupe key another call holds
CONNECT_TIMEOUT = 3.0
Target = str | Mapping[str, Any]


@dataclass(frozen=True)
class TriggerResult:
    trigger_id: str
    campaign_id: str
    duplicate: bool = False  # an earlier call with the same dedupe key sent it
    attempts: int = 1
    request_id: str | None = None


@dataclass(frozen=True)
class TriggerStatus:
    trigger_id: str
    status: str
    counts: dict[str, int]
    raw: dict[str, Any] = field(repr=False)

    @property
    def done(self) -> bool:
        return self.status in ("completed", "failed", "cancelled")


@dataclass
class Call:
    """One logical call: fixed before the first attempt (its Idempotency-Key included)."""

    method: str
    path: str
    body: Any = None
    params: Mapping[str, Any] | None = None
    idempotency_key: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    started: float = field(default_factory=time.monotonic)
    attempts: int = 0

    def remaining(self) -> float:
        return self.timeout - (time.monotonic() - self.started)


def scheduled(send_at: datetime | str | None, in_local_time: bool) -> dict[str, Any]:
    """Clarion's ``send_at`` (an aware datetime or ISO-8601 text) and ``in_local_time``."""
    if send_at is None:
        if in_local_time:
            raise errors.InvalidRequestError("in_local_time needs send_at", code="invalid_schedule")
        return {}
    if isinstance(send_at, datetime):
        if send_at.tzinfo is None:
            raise errors.InvalidRequestError("send_at needs a timezone (an aware datetime)",
                                             code="invalid_schedule")  # fmt: skip
        send_at = send_at.isoformat()
    return {"send_at": send_at, "in_local_time": True} if in_local_time else {"send_at": send_at}


def targets_body(targets: Sequence[Target]) -> list[dict[str, Any]]:
    """``"user:ID"``, ``"device:ID"`` or dicts with one of project_user_id / device_id, and
    optionally ``properties`` (Clarion: that recipient's own, over the top-level ones)."""
    out = []
    for target in targets:
        if isinstance(target, str):
            kind, sep, value = target.partition(":")
            if not sep or not value or kind not in ("user", "device"):
                raise errors.InvalidRequestError(
                    f"target {target!r}: write user:PROJECT_USER_ID or device:DEVICE_ID",
                    code="invalid_target",
                )
            out.append({"project_user_id" if kind == "user" else "device_id": value})
        else:
            ids = {k: v for k, v in target.items() if k in ("project_user_id", "device_id") and v}
            extra = set(target) - {"project_user_id", "device_id", "properties"}
            if len(ids) != 1 or extra or len(target) - ("properties" in target) != 1:
                raise errors.InvalidRequestError(
                    f"target {dict(target)!r}: exactly one of project_user_id or device_id "
                    "(and, for Clarion, this recipient's own properties)",
                    code="invalid_target",
                )
            entry: dict[str, Any] = dict(ids)
            if target.get("properties"):
                entry["properties"] = dict(target["properties"])
            out.append(entry)
    return out


@dataclass
class PendingTrigger:
    """A trigger call between its checks and its answer."""

    call: Call
    campaign_id: str
    mode: str
    correlation_id: str | None
    dedupe_name: str | None  # set when the call holds a dedupe key

    def fields(self) -> dict[str, Any]:
        return {"campaign_id": self.campaign_id, "correlation_id": self.correlation_id,
                "audience_mode": self.mode}  # fmt: skip

    def latency_ms(self) -> int:
        return round((time.monotonic() - self.call.started) * 1000)


class BaseClient:
    def __init__(
        self,
        project_id: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        attempt_timeout: float | None = None,
        retry: Policy | None = None,
        dedupe: DedupeStore | None = None,
        dedupe_ttl: float = DEFAULT_TTL,
        plan: str | Path | Plan | None = None,
    ) -> None:
        self.credentials: Credentials = resolve(project_id, api_key, base_url)
        self.timeout = timeout  # the whole call, retries and waits included
        self.attempt_timeout = attempt_timeout  # one try (None: whatever the call has left)
        self.retry: Policy = retry if retry is not None else RetryPolicy()
        self.dedupe = dedupe
        self.dedupe_ttl = dedupe_ttl
        self.plan = plan if isinstance(plan, Plan) or plan is None else Plan.load(plan)

    def __repr__(self) -> str:
        c = self.credentials
        return (f"{type(self).__name__}(project_id={c.project_id!r}, "
                f"api_key={redact(c.api_key)!r}, base_url={c.base_url!r})")  # fmt: skip

    # -- requests ---------------------------------------------------------------------------
    def _trigger_call(
        self,
        campaign_id: str,
        broadcast: bool | None,
        targets: Sequence[Target] | None,
        properties: Mapping[str, Any] | None,
        dedupe_key: str | None,
        timeout: float | None,
        plan: str | Path | Plan | None,
        schedule: Mapping[str, Any] | None = None,
    ) -> tuple[Call, str, Plan | None]:
        if not isinstance(campaign_id, str) or not campaign_id.strip():
            raise errors.InvalidRequestError("campaign_id must be a non-empty string")
        if broadcast and targets:
            raise errors.InvalidRequestError("pass broadcast=True or targets, not both")
        checked = self.plan if plan is None else plan if isinstance(plan, Plan) else Plan.load(plan)
        properties = dict(properties or {})
        if checked is not None:
            checked.check_properties(properties)
        audience: dict[str, Any] = {}
        mode = "default"
        if broadcast:
            audience["broadcast"], mode = True, "broadcast"
        elif targets:
            audience["targets"], mode = targets_body(targets), "targets"
        body: dict[str, Any] = {"properties": properties, **(schedule or {})}
        if audience:
            body["audience"] = audience
        key = self._idempotency_key(campaign_id, dedupe_key)
        call = Call("POST", f"/api/v1/campaigns/{campaign_id}:trigger", body,
                    idempotency_key=key, timeout=timeout or self.timeout)  # fmt: skip
        return call, mode, checked

    def _write_call(self, method: str, path: str, body: Any) -> Call:
        """A call that creates or changes something: an Idempotency-Key unless it deletes."""
        key = None if method == "DELETE" else str(uuid.uuid4())
        return Call(method, path, body, idempotency_key=key, timeout=self.timeout)

    def _start_trigger(
        self,
        campaign_id: str,
        broadcast: bool | None,
        targets: Sequence[Target] | None,
        properties: Mapping[str, Any] | None,
        dedupe_key: str | None,
        correlation_id: str | None,
        timeout: float | None,
        plan: str | Path | Plan | None,
        send_at: datetime | str | None = None,
        in_local_time: bool = False,
    ) -> PendingTrigger:
        call, mode, checked = self._trigger_call(
            campaign_id,
            broadcast,
            targets,
            properties,
            dedupe_key,
            timeout,
            plan,
            scheduled(send_at, in_local_time),
        )
        self._log_properties(checked, call.body["properties"])
        name = self._dedupe_name(campaign_id, dedupe_key) if dedupe_key is not None else None
        return PendingTrigger(call, campaign_id, mode, correlation_id, name)

    def _duplicate(self, pending: PendingTrigger, first: str) -> TriggerResult:
        self._log(logging.INFO, "trigger deduplicated", **pending.fields(), trigger_id=first,
                  status="duplicate")  # fmt: skip
        return TriggerResult(first, pending.campaign_id, duplicate=True, attempts=0)

    def _failed(self, pending: PendingTrigger, exc: errors.ClixError) -> None:
        self._log(logging.WARNING, "trigger failed", **pending.fields(), status=exc.status,
                  code=exc.code, attempts=pending.call.attempts,
                  latency_ms=pending.latency_ms())  # fmt: skip

    def _accepted(
        self, pending: PendingTrigger, body: Any, response: httpx.Response
    ) -> TriggerResult:
        trigger_id = str(body["trigger_id"])
        self._log(logging.INFO, "trigger accepted", **pending.fields(), trigger_id=trigger_id,
                  status=response.status_code, attempts=pending.call.attempts,
                  latency_ms=pending.latency_ms())  # fmt: skip
        return TriggerResult(trigger_id, pending.campaign_id, attempts=pending.call.attempts,
                             request_id=response.headers.get("X-Request-ID"))  # fmt: skip

    def _claim_or_wait(self, first: str | None, call: Call) -> bool:
        """After a dedupe claim: True to poll again (the first call is in flight)."""
        if first != PENDING:
            return False
        if call.remaining() <= DEDUPE_POLL:
            raise errors.DedupeInProgressError(
                "a call with the same dedupe key is still in flight", code="dedupe_in_progress"
            )
        return True

    def _attempt(self, call: Call) -> dict[str, Any]:
        """The next attempt's request, or TimeoutError when the call has no time left."""
        call.attempts += 1
        remaining = call.remaining()
        if remaining <= 0:
            raise errors.TimeoutError(
                f"gave up after {call.attempts - 1} attempt(s): the call's "
                f"{call.timeout:g} s ran out"
            )
        return self._request(call, remaining)

    def _wait_before_retry(self, call: Call, error: errors.ClixError) -> float:
        """Seconds to wait before the next attempt; raises ``error`` to give up."""
        wait = self.retry.delay(error, call.attempts, time.monotonic() - call.started)
        if wait is None or wait >= call.remaining():
            raise error
        self._log(logging.INFO, "retrying", path=call.path, attempt=call.attempts,
                  error=type(error).__name__, status=error.status,
                  wait_ms=round(wait * 1000))  # fmt: skip
        return wait

    def _messages_call(
        self, trigger_id: str, status: str | None, limit: int, cursor: str | None
    ) -> Call:
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        if cursor:
            params["cursor"] = cursor
        return Call("GET", f"/api/v1/triggers/{trigger_id}/messages", params=params,
                    timeout=self.timeout)  # fmt: skip

    def _explain_call(
        self, trigger_id: str, project_user_id: str | None, device_id: str | None
    ) -> Call:
        if (project_user_id is None) == (device_id is None):
            raise errors.InvalidRequestError(
                "give exactly one of project_user_id or device_id", code="invalid_target"
            )
        params = {"project_user_id": project_user_id} if project_user_id is not None else {
            "device_id": device_id}  # fmt: skip
        return Call("GET", f"/api/v1/triggers/{trigger_id}/explain", params=params,
                    timeout=self.timeout)  # fmt: skip

    def _dry_run_call(
        self,
        campaign_id: str,
        broadcast: bool | None,
        targets: Sequence[Target] | None,
        properties: Mapping[str, Any] | None,
        sample: int,
    ) -> Call:
        call, _, _ = self._trigger_call(campaign_id, broadcast, targets, properties, None,
                                        None, None)  # fmt: skip
        call.path = call.path.replace(":trigger", ":dry-run")
        call.params = {"sample": sample}
        return call

    def _idempotency_key(self, campaign_id: str, dedupe_key: str | None) -> str:
        """Fixed before the first attempt. With a dedupe key it is derived from it, so that
        a replay from another process carries the same key."""
        if dedupe_key is None:
            return str(uuid.uuid4())
        seed = f"{self.credentials.project_id}|{campaign_id}|{dedupe_key}".encode()
        return "dedupe-" + hashlib.sha256(seed).hexdigest()[:48]

    def _dedupe_name(self, campaign_id: str, dedupe_key: str) -> str:
        return f"{self.credentials.project_id}:{campaign_id}:{dedupe_key}"

    def _request(self, call: Call, remaining: float) -> dict[str, Any]:
        attempt_timeout = min(remaining, self.attempt_timeout or remaining)
        headers = {**self.credentials.headers, "Accept": "application/json",
                   "User-Agent": "clarion-client/0.1"}  # fmt: skip
        if call.idempotency_key:
            headers["Idempotency-Key"] = call.idempotency_key
        return {
            "method": call.method,
            "url": self.credentials.base_url + call.path,
            "json": call.body,
            "params": call.params,
            "headers": headers,
            "timeout": httpx.Timeout(
                attempt_timeout, connect=min(CONNECT_TIMEOUT, attempt_timeout)
            ),
        }

    # -- answers ----------------------------------------------------------------------------
    @staticmethod
    def _answer(response: httpx.Response) -> Any:
        """The decoded body of a 2xx; raises the typed error of anything else."""
        request_id = response.headers.get("X-Request-ID")
        try:
            body: Any = response.json() if response.content else None
        except ValueError:
            body = response.text
        if response.is_success:
            return body
        error = body.get("error") if isinstance(body, dict) else None
        code = message = None
        if isinstance(error, dict):
            code, message = error.get("code"), error.get("message")
        elif isinstance(error, str):
            message = error
        message = message or f"HTTP {response.status_code}"
        kw: dict[str, Any] = {"status": response.status_code, "code": code, "body": body,
                              "request_id": request_id}  # fmt: skip
        status = response.status_code
        if status == 401:
            raise errors.AuthenticationError(message, **kw)
        if status == 403:
            raise errors.PermissionError(message, **kw)
        if status == 429:
            raise errors.RateLimitError(message, retry_after=_retry_after(response), **kw)
        if status >= 500:
            raise errors.ServerError(message, **kw)
        raise errors.InvalidRequestError(message, **kw)

    @staticmethod
    def _transport_error(exc: httpx.HTTPError) -> errors.ClixError:
        if isinstance(exc, httpx.TimeoutException):
            return errors.TimeoutError(f"timed out: {type(exc).__name__}")
        return errors.NetworkError(f"network error: {type(exc).__name__}: {exc}")

    # -- logging ----------------------------------------------------------------------------
    def _log(self, level: int, event: str, **fields: Any) -> None:
        fields = {k: v for k, v in fields.items() if v is not None}
        text = " ".join(f"{k}={v}" for k, v in fields.items())
        log.log(level, f"{event} {text}", extra={"clix": fields, **fields})

    def _log_properties(self, plan: Plan | None, properties: Mapping[str, Any]) -> None:
        if log.isEnabledFor(logging.DEBUG):
            pii = plan.pii_keys if plan is not None else frozenset()
            shown = {k: "[redacted]" if k in pii else v for k, v in properties.items()}
            log.debug("trigger properties %s", shown)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())


__all__ = ["PENDING", "BaseClient", "Call", "TriggerResult", "TriggerStatus", "targets_body"]
