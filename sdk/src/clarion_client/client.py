"""``Client`` (blocking) and ``AsyncClient`` (asyncio): the same calls on one shared base.

from clarion_client import Client
with Client() as clix:  # CLIX_PROJECT_ID, CLIX_API_KEY, CLIX_BASE_URL
    result = clix.trigger_campaign("CAMPAIGN_ID", targets=["user:u-1"],
                                   properties={"order_id": "A-1"}, dedupe_key="A-1")
    print(result.trigger_id)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from clarion_client import errors
from clarion_client._base import (
    DEDUPE_POLL,
    BaseClient,
    Call,
    Target,
    TriggerResult,
    TriggerStatus,
)
from clarion_client.dedupe import DedupeStore, MemoryDedupe
from clarion_client.plan import Plan


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
        self.store: DedupeStore = self.dedupe or MemoryDedupe()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._own:
            self._http.close()

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
        send_at: datetime | str | None = None,
        in_local_time: bool = False,
    ) -> TriggerResult:
        """Clarion additions: ``send_at`` delivers later (``in_local_time``: at its wall-clock
        time in each device's timezone); a target may carry its own ``properties``."""
        pending = self._start_trigger(campaign_id, broadcast, targets, properties, dedupe_key,
                                      correlation_id, timeout, plan, send_at,
                                      in_local_time)  # fmt: skip
        name = pending.dedupe_name
        if name is not None:
            while self._claim_or_wait(first := self.store.claim(name, self.dedupe_ttl),
                                      pending.call):  # fmt: skip
                time.sleep(DEDUPE_POLL)
            if first is not None:
                return self._duplicate(pending, first)
        try:
            body, response = self._send(pending.call)
        except errors.ClixError as exc:
            if name is not None:
                self.store.release(name)
            self._failed(pending, exc)
            raise
        result = self._accepted(pending, body, response)
        if name is not None:
            self.store.complete(name, result.trigger_id, self.dedupe_ttl)
        return result

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
        call = self._dry_run_call(campaign_id, broadcast, targets, properties, sample)
        return dict(self._send(call)[0])

    def get_trigger(self, trigger_id: str) -> TriggerStatus:
        body = self._send(Call("GET", f"/api/v1/triggers/{trigger_id}", timeout=self.timeout))[0]
        return TriggerStatus(body["trigger_id"], body["status"], body["counts"], body)

    def cancel_trigger(self, trigger_id: str) -> TriggerStatus:
        """Clarion: stop a trigger; its messages not yet handed over are not sent."""
        body = self._write("POST", f"/api/v1/triggers/{trigger_id}:cancel", None)
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
            page = self.message_page(trigger_id, status=status, limit=page_size, cursor=cursor)
            yield from page["messages"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def message_page(
        self,
        trigger_id: str,
        *,
        status: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """One page of the message log: ``messages`` and ``next_cursor`` (None at the end)."""
        return dict(self._send(self._messages_call(trigger_id, status, limit, cursor))[0])

    def explain_delivery(
        self, trigger_id: str, *, project_user_id: str | None = None, device_id: str | None = None
    ) -> dict[str, Any]:
        """Clarion: why one user or device was (not) reached, step by step."""
        call = self._explain_call(trigger_id, project_user_id, device_id)
        return dict(self._send(call)[0])

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
        call = Call("GET", f"/api/v1/campaigns/{campaign_id}", timeout=self.timeout)
        return dict(self._send(call)[0])

    def list_campaigns(self) -> list[dict[str, Any]]:
        call = Call("GET", "/api/v1/campaigns", timeout=self.timeout)
        return list(self._send(call)[0]["campaigns"])

    def campaign_plan(self, campaign_id: str) -> dict[str, Any]:
        """Clarion: the campaign's trigger plan, as .clix/api-trigger-plan.json holds it."""
        call = Call("GET", f"/api/v1/campaigns/{campaign_id}/plan", timeout=self.timeout)
        return dict(self._send(call)[0])

    def openapi(self) -> dict[str, Any]:
        """The server's OpenAPI document (its API reference)."""
        return dict(self._send(Call("GET", "/openapi.json", timeout=self.timeout))[0])

    def _write(self, method: str, path: str, body: Any) -> Any:
        return self._send(self._write_call(method, path, body))[0]

    def _send(self, call: Call) -> tuple[Any, httpx.Response]:
        while True:
            request = self._attempt(call)
            try:
                response = self._http.request(**request)
                return self._answer(response), response
            except httpx.HTTPError as exc:
                error = self._transport_error(exc)
            except errors.ClixError as exc:
                error = exc
            time.sleep(self._wait_before_retry(call, error))


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
        self.store: DedupeStore = self.dedupe or MemoryDedupe()

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
        send_at: datetime | str | None = None,
        in_local_time: bool = False,
    ) -> TriggerResult:
        pending = self._start_trigger(campaign_id, broadcast, targets, properties, dedupe_key,
                                      correlation_id, timeout, plan, send_at,
                                      in_local_time)  # fmt: skip
        name = pending.dedupe_name
        if name is not None:
            while self._claim_or_wait(
                first := await asyncio.to_thread(self.store.claim, name, self.dedupe_ttl),
                pending.call,
            ):
                await asyncio.sleep(DEDUPE_POLL)
            if first is not None:
                return self._duplicate(pending, first)
        try:
            body, response = await self._send(pending.call)
        except errors.ClixError as exc:
            if name is not None:
                await asyncio.to_thread(self.store.release, name)
            self._failed(pending, exc)
            raise
        result = self._accepted(pending, body, response)
        if name is not None:
            await asyncio.to_thread(self.store.complete, name, result.trigger_id, self.dedupe_ttl)
        return result

    async def dry_run(
        self,
        campaign_id: str,
        *,
        broadcast: bool | None = None,
        targets: Sequence[Target] | None = None,
        properties: Mapping[str, Any] | None = None,
        sample: int = 10,
    ) -> dict[str, Any]:
        call = self._dry_run_call(campaign_id, broadcast, targets, properties, sample)
        return dict((await self._send(call))[0])

    async def get_trigger(self, trigger_id: str) -> TriggerStatus:
        call = Call("GET", f"/api/v1/triggers/{trigger_id}", timeout=self.timeout)
        body = (await self._send(call))[0]
        return TriggerStatus(body["trigger_id"], body["status"], body["counts"], body)

    async def cancel_trigger(self, trigger_id: str) -> TriggerStatus:
        body = await self._write("POST", f"/api/v1/triggers/{trigger_id}:cancel", None)
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
            page = await self.message_page(trigger_id, status=status, limit=page_size,
                                           cursor=cursor)  # fmt: skip
            for message in page["messages"]:
                yield message
            cursor = page.get("next_cursor")
            if not cursor:
                return

    async def message_page(
        self,
        trigger_id: str,
        *,
        status: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        call = self._messages_call(trigger_id, status, limit, cursor)
        return dict((await self._send(call))[0])

    async def explain_delivery(
        self, trigger_id: str, *, project_user_id: str | None = None, device_id: str | None = None
    ) -> dict[str, Any]:
        call = self._explain_call(trigger_id, project_user_id, device_id)
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

    async def list_campaigns(self) -> list[dict[str, Any]]:
        call = Call("GET", "/api/v1/campaigns", timeout=self.timeout)
        return list((await self._send(call))[0]["campaigns"])

    async def campaign_plan(self, campaign_id: str) -> dict[str, Any]:
        call = Call("GET", f"/api/v1/campaigns/{campaign_id}/plan", timeout=self.timeout)
        return dict((await self._send(call))[0])

    async def openapi(self) -> dict[str, Any]:
        return dict((await self._send(Call("GET", "/openapi.json", timeout=self.timeout)))[0])

    async def _write(self, method: str, path: str, body: Any) -> Any:
        return (await self._send(self._write_call(method, path, body)))[0]

    async def _send(self, call: Call) -> tuple[Any, httpx.Response]:
        while True:
            request = self._attempt(call)
            try:
                response = await self._http.request(**request)
                return self._answer(response), response
            except httpx.HTTPError as exc:
                error = self._transport_error(exc)
            except errors.ClixError as exc:
                error = exc
            await asyncio.sleep(self._wait_before_retry(call, error))
