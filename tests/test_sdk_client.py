"""The client SDK: against a real Clarion server on a real port, and against a scripted local
server for the faults (retries, timeouts, Retry-After, idempotency), dedupe in memory, Redis
and SQL, and logs without secrets."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from clarion_client import (
    AsyncClient,
    AuthenticationError,
    Client,
    InvalidRequestError,
    MemoryDedupe,
    MissingCredentialsError,
    PermissionError,
    PlanMismatchError,
    RateLimitError,
    RedisDedupe,
    RetryPolicy,
    ServerError,
    SQLDedupe,
    TimeoutError,
)
from sqlalchemy import create_engine

from clarion.storage.db import Database
from tests.conftest import Project, Server, free_port, make_project
from tests.helpers import add_user, create_campaign, redis_or_skip
from tests.sdk_fakes import accepted, fails_after_creating, serve, slow

DEVICE = {"id": "d-1", "platform": "ios", "push_token": "tok", "is_push_permission_granted": True}
FAST = RetryPolicy(base=0.01, cap=0.05)


def client_for(server: Server, project: Project, **options: Any) -> Client:
    return Client(project.id, project.secret, server.url, **options)


def pickup(server: Server, project: Project) -> str:
    return create_campaign(server.client, project, {
        "name": "pickup", "status": "active",
        "message": {"title": "Order {{ trigger.order_id }}", "body": "Hi {{ user.name }}"},
        "audience": {"conditions": [
            {"attribute": "store", "operator": "equals", "value": "{{ trigger.store }}"}]},
    })  # fmt: skip


def test_trigger_status_messages_users_and_dry_run_against_a_live_server(
    server: Server, db: Database
) -> None:
    project = make_project(db)
    campaign_id = pickup(server, project)
    with client_for(server, project) as clix:
        clix.create_user("u-1", {"store": "gangnam", "name": "Ann"})
        clix.update_user("u-1", {"name": "Ann K"})
        add_user(server.client, project, "u-1", {"store": "gangnam", "name": "Ann K"}, [DEVICE])
        dry = clix.dry_run(campaign_id, properties={"store": "gangnam", "order_id": "A-1"})
        assert dry["reach"]["users"] == 1 and dry["sample"][0]["status"] == "would_send"
        result = clix.trigger_campaign(
            campaign_id, targets=["user:u-1"], properties={"store": "gangnam", "order_id": "A-1"}
        )
        assert result.attempts == 1 and result.request_id
        status = clix.wait_for_trigger(result.trigger_id, timeout=15)
        assert status.status == "completed" and status.counts["sent"] == 1
        (message,) = list(clix.trigger_messages(result.trigger_id))
        assert message["title"] == "Order A-1" and message["body"] == "Hi Ann K"
        with pytest.raises(InvalidRequestError) as caught:
            clix.trigger_campaign(campaign_id, properties={"order_id": "A-2"})
        error = caught.value
        assert error.status == 400 and error.code == "missing_trigger_property"
        assert error.request_id and "store" in error.message
        clix.delete_user("u-1")
    with (
        Client(project.id, "clx_sk_wrong", server.url) as wrong,
        pytest.raises(AuthenticationError),
    ):
        wrong.trigger_campaign(campaign_id, properties={"store": "x"})
    with Client(project.id, project.public, server.url) as public, pytest.raises(PermissionError):
        public.trigger_campaign(campaign_id, properties={"store": "x"})


def test_the_async_client_against_a_live_server(server: Server, db: Database) -> None:
    project = make_project(db)
    campaign_id = pickup(server, project)
    add_user(server.client, project, "u-1", {"store": "s", "name": "Bo"}, [DEVICE])

    async def run() -> tuple[str, str]:
        async with AsyncClient(project.id, project.secret, server.url) as clix:
            result = await clix.trigger_campaign(
                campaign_id, broadcast=True, properties={"store": "s", "order_id": "Z"}
            )
            status = await clix.wait_for_trigger(result.trigger_id, timeout=15)
            titles = [m["title"] async for m in clix.trigger_messages(result.trigger_id)]
            return status.status, titles[0]

    assert asyncio.run(run()) == ("completed", "Order Z")


def test_credentials_come_from_the_environment_and_missing_ones_fail_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CLIX_PROJECT_ID", raising=False)
    monkeypatch.delenv("CLIX_API_KEY", raising=False)
    with pytest.raises(
        MissingCredentialsError, match=r"project_id \(CLIX_PROJECT_ID\) and api_key"
    ):
        Client()
    monkeypatch.setenv("CLIX_PROJECT_ID", "p")
    monkeypatch.setenv("CLIX_API_KEY", "clx_sk_secret_value")
    client = Client()
    assert client.credentials.base_url == "https://api.clix.so"
    assert "secret_value" not in repr(client) and "clx_sk_" in repr(client)
    assert "secret_value" not in repr(client.credentials)


def test_500_then_200_retries_with_one_idempotency_key_and_one_trigger() -> None:
    with serve([fails_after_creating, accepted]) as fake:
        with Client("p", "clx_sk_k", fake.url, retry=FAST) as clix:
            result = clix.trigger_campaign("c", properties={"a": 1})
    assert result.attempts == 2 and len(fake.triggers) == 1
    assert result.trigger_id == next(iter(fake.triggers.values()))
    keys = {r["headers"]["idempotency-key"] for r in fake.requests}
    assert len(fake.requests) == 2 and len(keys) == 1


def test_a_400_is_not_retried_and_carries_everything() -> None:
    body = {"error": {"code": "invalid_request", "message": "audience.targets[0]: bad"}}
    with serve([(400, {"X-Request-ID": "req-400"}, body)]) as fake:
        with Client("p", "clx_sk_k", fake.url, retry=FAST) as clix:
            with pytest.raises(InvalidRequestError) as caught:
                clix.trigger_campaign("c", targets=["user:u"])
    error = caught.value
    assert len(fake.requests) == 1
    assert (error.status, error.code, error.request_id) == (400, "invalid_request", "req-400")
    assert error.body == body and "audience.targets[0]: bad" in str(error)


def test_429_waits_at_least_retry_after() -> None:
    limited = (429, {"Retry-After": "1"}, {"error": "Too Many Requests"})
    with serve([limited, accepted]) as fake:
        with Client("p", "clx_sk_k", fake.url, retry=FAST) as clix:
            result = clix.trigger_campaign("c")
    gap = fake.requests[1]["at"] - fake.requests[0]["at"]
    assert result.attempts == 2 and gap >= 1.0


def test_429_past_the_total_budget_is_raised() -> None:
    limited = (429, {"Retry-After": "30"}, {"error": "Too Many Requests"})
    with serve([limited]) as fake, Client("p", "clx_sk_k", fake.url, timeout=2) as clix:
        with pytest.raises(RateLimitError) as caught:
            clix.trigger_campaign("c")
    assert caught.value.retry_after == 30 and len(fake.requests) == 1


def test_a_timeout_is_retried_within_the_total_cap() -> None:
    with serve([slow(1.0, accepted), accepted]) as fake:
        with Client("p", "clx_sk_k", fake.url, timeout=5, attempt_timeout=0.3, retry=FAST) as clix:
            started = time.monotonic()
            result = clix.trigger_campaign("c")
    assert result.attempts == 2 and time.monotonic() - started < 2
    assert len(fake.triggers) == 1  # both attempts carried the same key

    with serve([slow(1.0, accepted)]) as fake:
        with Client("p", "clx_sk_k", fake.url, timeout=1.5, attempt_timeout=0.3,
                    retry=RetryPolicy(max_attempts=50, base=0.01, cap=0.05)) as clix:  # fmt: skip
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                clix.trigger_campaign("c")
    assert time.monotonic() - started < 1.5 + 0.5 and len(fake.requests) >= 3


def test_5xx_gives_up_after_the_attempt_cap() -> None:
    with serve([(503, {}, {"error": {"code": "unavailable", "message": "later"}})]) as fake:
        with Client("p", "clx_sk_k", fake.url,
                    retry=RetryPolicy(max_attempts=3, base=0.01)) as clix:  # fmt: skip
            with pytest.raises(ServerError):
                clix.trigger_campaign("c")
    assert len(fake.requests) == 3


def _dedupe_cases() -> list[Any]:
    return ["memory", "redis", "sql"]


@pytest.fixture(params=_dedupe_cases())
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "memory":
        return MemoryDedupe()
    if request.param == "redis":
        return RedisDedupe(redis_or_skip(), prefix=f"test:{uuid.uuid4()}:")
    return SQLDedupe(create_engine(f"sqlite:///{tmp_path / 'dedupe.db'}"))


def test_a_duplicate_returns_the_first_trigger_and_sends_nothing(store: Any) -> None:
    with serve([accepted]) as fake, Client("p", "clx_sk_k", fake.url, dedupe=store) as clix:
        first = clix.trigger_campaign("c", dedupe_key="order-1")
        again = clix.trigger_campaign("c", dedupe_key="order-1")
        other = clix.trigger_campaign("c", dedupe_key="order-2")
    assert again.duplicate and again.trigger_id == first.trigger_id and not first.duplicate
    assert other.trigger_id != first.trigger_id
    assert len(fake.requests) == 2


def test_a_failed_send_releases_the_dedupe_key(store: Any) -> None:
    bad = (400, {}, {"error": {"code": "invalid_request", "message": "no"}})
    with serve([bad, accepted]) as fake, Client("p", "clx_sk_k", fake.url, dedupe=store) as clix:
        with pytest.raises(InvalidRequestError):
            clix.trigger_campaign("c", dedupe_key="order-9")
        retry = clix.trigger_campaign("c", dedupe_key="order-9")
    assert not retry.duplicate and len(fake.requests) == 2


def test_the_plan_holds_the_call_before_any_request(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(
        '{"campaign_id": "c", "dynamic_filter_keys": ["store"], "properties": {'
        '"store": {"type": "string", "required": true},'
        '"count": {"type": "number"}, "email": {"type": "string", "pii": true}}}',
        "utf-8",
    )
    with serve([accepted]) as fake, Client("p", "clx_sk_k", fake.url, plan=plan) as clix:
        with pytest.raises(PlanMismatchError) as caught:
            clix.trigger_campaign("c", properties={"count": True})
        assert "'store' is missing" in str(caught.value)
        assert "'count' must be a number" in str(caught.value)
        assert fake.requests == []
        clix.trigger_campaign("c", properties={"store": "s", "count": 2})
    assert len(fake.requests) == 1


def test_no_secret_in_logs_reprs_or_errors(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    secret = "clx_sk_" + uuid.uuid4().hex
    plan = tmp_path / "plan.json"
    plan.write_text('{"campaign_id": "c", "properties": {"email": {"type": "string", '
                    '"pii": true}, "order_id": {"type": "string"}}}', "utf-8")  # fmt: skip
    caplog.set_level(logging.DEBUG, logger="clarion_client")
    errors: list[BaseException] = []
    with serve([fails_after_creating, accepted]) as fake:
        with Client("p", secret, fake.url, retry=FAST, plan=plan) as clix:
            result = clix.trigger_campaign("c", properties={"email": "ann@example.com",
                                                            "order_id": "A-1"},
                                           correlation_id="order-A-1")  # fmt: skip
            text = repr(clix)
    with serve([(401, {}, {"error": {"code": "invalid_credentials", "message": "no"}})]) as fake:
        with Client("p", secret, fake.url) as clix:
            try:
                clix.trigger_campaign("c")
            except AuthenticationError as exc:
                errors.append(exc)
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert secret not in logged and secret not in text
    assert all(secret not in f"{e} {e!r} {getattr(e, 'body', '')}" for e in errors)
    assert "ann@example.com" not in logged and "[redacted]" in logged
    accepted_record = next(
        r for r in caplog.records if r.getMessage().startswith("trigger accepted")
    )
    fields = accepted_record.__dict__["clix"]
    assert fields["campaign_id"] == "c" and fields["trigger_id"] == result.trigger_id
    assert fields["correlation_id"] == "order-A-1" and fields["audience_mode"] == "default"
    assert fields["status"] == 200 and fields["attempts"] == 2 and "latency_ms" in fields


def test_targets_accept_simple_forms() -> None:
    with serve([accepted]) as fake, Client("p", "clx_sk_k", fake.url) as clix:
        clix.trigger_campaign("c", targets=["user:u-1", "device:d-1", {"project_user_id": "u-2"}])
        with pytest.raises(InvalidRequestError, match="user:PROJECT_USER_ID"):
            clix.trigger_campaign("c", targets=["u-1"])
        with pytest.raises(InvalidRequestError, match="exactly one"):
            clix.trigger_campaign("c", targets=[{"project_user_id": "a", "device_id": "b"}])
    assert fake.requests[0]["body"]["audience"]["targets"] == [
        {"project_user_id": "u-1"}, {"device_id": "d-1"}, {"project_user_id": "u-2"}
    ]  # fmt: skip
    assert len(fake.requests) == 1


def test_network_errors_are_retried_then_raised() -> None:
    from clarion_client import NetworkError

    port = free_port()  # nothing listens there
    with Client("p", "clx_sk_k", f"http://127.0.0.1:{port}",
                retry=RetryPolicy(max_attempts=3, base=0.01)) as clix:  # fmt: skip
        with pytest.raises(NetworkError) as caught:
            clix.trigger_campaign("c")
    assert "ConnectError" in str(caught.value)


def test_messages_send_and_users_with_both_clients(server: Server, db: Database) -> None:
    project = make_project(db)
    push = {"target": {"device_id": "d-1"}, "title": "Direct", "body": "hello"}
    with client_for(server, project) as clix:
        clix.create_user("u-9", {"tier": "gold"})
        assert clix.update_user("u-9", {"tier": "silver"})["properties"]["tier"] == "silver"
        add_user(server.client, project, "u-9", {}, [DEVICE])
        (result,) = clix.send_messages([push])["delivery_results"]
        assert result["status"] == "DELIVERY_RESULT_STATUS_SUCCEED"
        assert result["additional_params"]["device_id"] == "d-1"

    async def run() -> dict[str, Any]:
        async with AsyncClient(project.id, project.secret, server.url) as clix:
            await clix.update_user("u-9", {"tier": "platinum"})
            user = await clix.create_user("u-10", {"a": 1})
            await clix.delete_user("u-10")
            return user

    assert asyncio.run(run()) == {"properties": {"a": 1}}
