"""``Client`` (blocking) and ``AsyncClient`` (asyncio): the same calls on one shared base.

from clarion_client import Client
with Client() as clix:  # CLIX_PROJECT_ID, CLIX_API_KEY, CLIX_BASE_URL
    result = clix.trigger_campaign("CAMPAIGN_ID", targets=["user:u-1"],
                                   properties={"order_id": "A-1"}, dedupe_key="A-1")
    print(result.trigger_id)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from clarion_client import errors
from clarion_client._base import BaseClient, Call, Target, TriggerResult, TriggerStatus
from clarion_client.dedupe import PENDING, DedupeStore, MemoryDedupe
from clarion_client.plan import Plan

DEDUPE_POLL = 0.1


class Client(BaseClient):
    """Blocking client. ``http_client``: your own httpx.Client (a transport for tests, a
    proxy, ...); otherwise one is made and closed with this client."""

    def __init__(
        self,
        project_id: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        http_client: httpx.Client | None = None,
        **options: Any,
    ) -> None:
        super().__init__(project_id, api_key, base_url, **options)
        self._own = http_client is None
        self._http = http_client or httpx.Client()
        if self.dedupe is None:
            self.dedupe = MemoryDedupe()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._own:
            self._http.close()

    # -- the trigger ------------------------------------------------------------------------
    def trigger_campaign(
        self,
        campaign_id: str,
        *,
        broadcast: bool | None = None,
        targets: Sequence[Target] | None = None,
        properties: Mapping[str, Any] | None = None,
        dedupe_key: str | None = None,
        correlation_id: str | None = None,
        timeout: float | None = None,
        plan: str | Path | Plan | None = None,
    ) -> TriggerResult:
        call, mode, checked = self._trigger_call(
            campaign_id, broadcast, targets, properties, dedupe_key, timeout, plan
        )
        self._log_properties(checked, call.body["properties"])
        name = self._dedupe_name(campaign_id, dedupe_key) if dedupe_key is not None else None
        store: DedupeStore | None = self.dedupe if name is not None else None
        if store is not None and name is not None:
            first = self._claim(store, name, call)
            if first is not None:
                self._log(logging.INFO, "trigger deduplicated", campaign_id=campaign_id,
                          correlation_id=correlation_id, audience_mode=mode,
                          trigger_id=first, status="duplicate")  # fmt: skip
                return TriggerResult(first, campaign_id, duplicate=True, attempts=0)
        try:
            body, response = self._send(call)
        except errors.ClixError as exc:
            if store is not None and name is not None:
                store.release(name)
            self._log(logging.WARNING, "trigger failed", campaign_id=campaign_id,
                      correlation_id=correlation_id, audience_mode=mode, status=exc.status,
                      code=exc.code, attempts=call.attempts,
                      latency_ms=round((time.monotonic() - call.started) * 1000))  # fmt: skip
            raise
        trigger_id = str(body["trigger_id"])
        if store is not None and name is not None:
            store.complete(name, trigger_id, self.dedupe_ttl)
        self._log(logging.INFO, "trigger accepted", campaign_id=campaign_id,
                  correlation_id=correlation_id, audience_mode=mode, trigger_id=trigger_id,
                  status=response.status_code, attempts=call.attempts,
                  latency_ms=round((time.monotonic() - call.started) * 1000))  # fmt: skip
        return TriggerResult(trigger_id, campaign_id, attempts=call.attempts,
                             request_id=response.headers.get("X-Request-ID"))  # fmt: skip

    def _claim(self, store: DedupeStore, name: str, call: Call) -> str | None:
        """None: this call sends. Else the first call's trigger id."""
        while True:
            first = store.claim(name, self.dedupe_ttl)
            if first != PENDING:
                return first
            if call.remaining() <= DEDUPE_POLL:
                raise errors.DedupeInProgressError(
                    "a call with the same dedupe key is still in flight", code="dedupe_in_progress"
                )
            time.sleep(DEDUPE_POLL)

    # -- the other calls --------------------------------------------------------------------
    def dry_run(
        self,
        campaign_id: str,
        *,
        broadcast: bool | None = None,
        targets: Sequence[Target] | None = None,
        properties: Mapping[str, Any] | None = None,
        sample: int = 10,
    ) -> dict[str, Any]:
        """Clarion: who would receive what, and why not; nothing is sent."""
        call, _, _ = self._trigger_call(campaign_id, broadcast, targets, properties, None,
                                        None, None)  # fmt: skip
        call.path = call.path.replace(":trigger", ":dry-run")
        call.params = {"sample": sample}
        return dict(self._send(call)[0])

    def get_trigger(self, trigger_id: str) -> TriggerStatus:
        body = self._send(Call("GET", f"/api/v1/triggers/{trigger_id}", timeout=self.timeout))[0]
        return TriggerStatus(body["trigger_id"], body["status"], body["counts"], body)

    def wait_for_trigger(
        self, trigger_id: str, timeout: float = 60.0, interval: float = 0.5
    ) -> TriggerStatus:
        deadline = time.monotonic() + timeout
        while True:
            status = self.get_trigger(trigger_id)
            if status.done or time.monotonic() >= deadline:
                return status
            time.sleep(interval)

    def trigger_messages(
        self, trigger_id: str, *, status: str | None = None, page_size: int = 100
    ) -> Iterator[dict[str, Any]]:
        """The message log, every page."""
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": page_size}
            if status:
                params["status"] = status
            if cursor:
                params["cursor"] = cursor
            page = self._send(Call("GET", f"/api/v1/triggers/{trigger_id}/messages",
                                   params=params, timeout=self.timeout))[0]  # fmt: skip
            yield from page["messages"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def create_user(
        self, project_user_id: str, properties: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        body = {"project_user_id": project_user_id, "properties": dict(properties or {})}
        return dict(self._write("POST", "/api/v1/users", body))

    def update_user(self, project_user_id: str, properties: Mapping[str, Any]) -> dict[str, Any]:
        body = {"properties": dict(properties)}
        return dict(self._write("PATCH", f"/api/v1/users/{project_user_id}", body))

    def delete_user(self, project_user_id: str) -> None:
        self._write("DELETE", f"/api/v1/users/{project_user_id}", None)

    def send_messages(self, push_notifications: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Clix ``messages:send``: a direct push without a campaign."""
        body = {"push_notifications": [dict(p) for p in push_notifications]}
        return dict(self._write("POST", "/api/v1/messages:send", body))

    def get_campaign(self, campaign_id: str) -> dict[str, Any]:
        """Clarion's management API: status, rules, the trigger keys rules and templates use."""
        return dict(self._send(Call("GET", f"/api/v1/campaigns/{campaign_id}",
                                    timeout=self.timeout))[0])  # fmt: skip

    def _write(self, method: str, path: str, body: Any) -> Any:
        return self._send(self._write_call(method, path, body))[0]

    # -- the loop ---------------------------------------------------------------------------
    def _send(self, call: Call) -> tuple[Any, httpx.Response]:
        while True:
            call.attempts += 1
            remaining = call.remaining()
            if remaining <= 0:
                raise errors.TimeoutError(
                    f"gave up after {call.attempts - 1} attempt(s): the call's "
                    f"{call.timeout:g} s ran out"
                )
            try:
                response = self._http.request(**self._request(call, remaining))
                return self._answer(response), response
            except httpx.HTTPError as exc:
                error = self._transport_error(exc)
            except errors.ClixError as exc:
                error = exc
            wait = self.retry.delay(error, call.attempts, time.monotonic() - call.started)
            if wait is None or wait >= call.remaining():
                raise error
            self._log(logging.INFO, "retrying", path=call.path, attempt=call.attempts,
                      error=type(error).__name__, status=error.status,
                      wait_ms=round(wait * 1000))  # fmt: skip
            time.sleep(wait)


class AsyncClient(BaseClient):
    """The same calls, awaited. Dedupe stores are called in a worker thread (Redis and SQL
    clients block)."""

    def __init__(
        self,
        project_id: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        http_client: httpx.AsyncClient | None = None,
        **options: Any,
    ) -> None:
        super().__init__(project_id, api_key, base_url, **options)
        self._own = http_client is None
        self._http = http_client or httpx.AsyncClient()
        if self.dedupe is None:
            self.dedupe = MemoryDedupe()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own:
            await self._http.aclose()

    async def trigger_campaign(
        self,
        campaign_id: str,
        *,
        broadcast: bool | None = None,
        targets: Sequence[Target] | None = None,
        properties: Mapping[str, Any] | None = None,
        dedupe_key: str | None = None,
        correlation_id: str | None = None,
        timeout: float | None = None,
        plan: str | Path | Plan | None = None,
    ) -> TriggerResult:
        call, mode, checked = self._trigger_call(
            campaign_id, broadcast, targets, properties, dedupe_key, timeout, plan
        )
        self._log_properties(checked, call.body["properties"])
        name = self._dedupe_name(campaign_id, dedupe_key) if dedupe_key is not None else None
        store = self.dedupe if name is not None else None
        if store is not None and name is not None:
            first = await self._claim(store, name, call)
            if first is not None:
                self._log(logging.INFO, "trigger deduplicated", campaign_id=campaign_id,
                          correlation_id=correlation_id, audience_mode=mode,
                          trigger_id=first, status="duplicate")  # fmt: skip
                return TriggerResult(first, campaign_id, duplicate=True, attempts=0)
        try:
            body, response = await self._send(call)
        except errors.ClixError as exc:
            if store is not None and name is not None:
                await asyncio.to_thread(store.release, name)
            self._log(logging.WARNING, "trigger failed", campaign_id=campaign_id,
                      correlation_id=correlation_id, audience_mode=mode, status=exc.status,
                      code=exc.code, attempts=call.attempts,
                      latency_ms=round((time.monotonic() - call.started) * 1000))  # fmt: skip
            raise
        trigger_id = str(body["trigger_id"])
        if store is not None and name is not None:
            await asyncio.to_thread(store.complete, name, trigger_id, self.dedupe_ttl)
        self._log(logging.INFO, "trigger accepted", campaign_id=campaign_id,
                  correlation_id=correlation_id, audience_mode=mode, trigger_id=trigger_id,
                  status=response.status_code, attempts=call.attempts,
                  latency_ms=round((time.monotonic() - call.started) * 1000))  # fmt: skip
        return TriggerResult(trigger_id, campaign_id, attempts=call.attempts,
                             request_id=response.headers.get("X-Request-ID"))  # fmt: skip

    async def _claim(self, store: DedupeStore, name: str, call: Call) -> str | None:
        while True:
            first = await asyncio.to_thread(store.claim, name, self.dedupe_ttl)
            if first != PENDING:
                return first
            if call.remaining() <= DEDUPE_POLL:
                raise errors.DedupeInProgressError(
                    "a call with the same dedupe key is still in flight", code="dedupe_in_progress"
                )
            await asyncio.sleep(DEDUPE_POLL)

    async def get_trigger(self, trigger_id: str) -> TriggerStatus:
        call = Call("GET", f"/api/v1/triggers/{trigger_id}", timeout=self.timeout)
        body = (await self._send(call))[0]
        return TriggerStatus(body["trigger_id"], body["status"], body["counts"], body)

    async def wait_for_trigger(
        self, trigger_id: str, timeout: float = 60.0, interval: float = 0.5
    ) -> TriggerStatus:
        deadline = time.monotonic() + timeout
        while True:
            status = await self.get_trigger(trigger_id)
            if status.done or time.monotonic() >= deadline:
                return status
            await asyncio.sleep(interval)

    async def trigger_messages(
        self, trigger_id: str, *, status: str | None = None, page_size: int = 100
    ) -> AsyncIterator[dict[str, Any]]:
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": page_size}
            if status:
                params["status"] = status
            if cursor:
                params["cursor"] = cursor
            call = Call("GET", f"/api/v1/triggers/{trigger_id}/messages", params=params,
                        timeout=self.timeout)  # fmt: skip
            page = (await self._send(call))[0]
            for message in page["messages"]:
                yield message
            cursor = page.get("next_cursor")
            if not cursor:
                return

    async def dry_run(
        self,
        campaign_id: str,
        *,
        broadcast: bool | None = None,
        targets: Sequence[Target] | None = None,
        properties: Mapping[str, Any] | None = None,
        sample: int = 10,
    ) -> dict[str, Any]:
        call, _, _ = self._trigger_call(campaign_id, broadcast, targets, properties, None,
                                        None, None)  # fmt: skip
        call.path = call.path.replace(":trigger", ":dry-run")
        call.params = {"sample": sample}
        return dict((await self._send(call))[0])

    async def create_user(
        self, project_user_id: str, properties: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        body = {"project_user_id": project_user_id, "properties": dict(properties or {})}
        return dict(await self._write("POST", "/api/v1/users", body))

    async def update_user(
        self, project_user_id: str, properties: Mapping[str, Any]
    ) -> dict[str, Any]:
        body = {"properties": dict(properties)}
        return dict(await self._write("PATCH", f"/api/v1/users/{project_user_id}", body))

    async def delete_user(self, project_user_id: str) -> None:
        await self._write("DELETE", f"/api/v1/users/{project_user_id}", None)

    async def send_messages(
        self, push_notifications: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        body = {"push_notifications": [dict(p) for p in push_notifications]}
        return dict(await self._write("POST", "/api/v1/messages:send", body))

    async def get_campaign(self, campaign_id: str) -> dict[str, Any]:
        call = Call("GET", f"/api/v1/campaigns/{campaign_id}", timeout=self.timeout)
        return dict((await self._send(call))[0])

    async def _write(self, method: str, path: str, body: Any) -> Any:
        return (await self._send(self._write_call(method, path, body)))[0]

    async def _send(self, call: Call) -> tuple[Any, httpx.Response]:
        while True:
            call.attempts += 1
            remaining = call.remaining()
            if remaining <= 0:
                raise errors.TimeoutError(
                    f"gave up after {call.attempts - 1} attempt(s): the call's "
                    f"{call.timeout:g} s ran out"
                )
            try:
                response = await self._http.request(**self._request(call, remaining))
                return self._answer(response), response
            except httpx.HTTPError as exc:
                error = self._transport_error(exc)
            except errors.ClixError as exc:
                error = exc
            wait = self.retry.delay(error, call.attempts, time.monotonic() - call.started)
            if wait is None or wait >= call.remaining():
                raise error
            self._log(logging.INFO, "retrying", path=call.path, attempt=call.attempts,
                      error=type(error).__name__, status=error.status,
                      wait_ms=round(wait * 1000))  # fmt: skip
            await asyncio.sleep(wait)
