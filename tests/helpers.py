"""Test data made through the public API, as a Clix customer's backend and SDK would."""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest
import redis

from clarion.runner.engine import BuiltinEngine
from tests.conftest import Project

PICKUP: dict[str, Any] = {
    "name": "New pickup order",
    "status": "active",
    "message": {
        "title": "New pickup order",
        "body": "Order #{{ trigger.order_id }} from {{ trigger.customer_name }}. "
        "{{ trigger.item_count }} items ready by {{ trigger.pickup_time }}.",
    },
    "audience": {
        "conditions": [
            {"attribute": "user_role", "operator": "equals", "value": "store_staff"},
            {
                "attribute": "store_location",
                "operator": "equals",
                "value": "{{ trigger.store_location }}",
            },
        ]
    },
}

PROPS = {
    "store_location": "San Francisco",
    "order_id": "ORD-12345",
    "customer_name": "Jamie Chen",
    "item_count": 3,
    "pickup_time": "2:30 PM",
}
# A trigger body that reaches one store staff member (sf-staff-1, of store_pickup's audience).
ONE_STAFF = {"audience": {"targets": [{"project_user_id": "sf-staff-1"}]}, "properties": PROPS}


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def create_campaign(client: httpx.Client, project: Project, spec: dict[str, Any]) -> str:
    body = ok(client.post("/api/v1/campaigns", json=spec, headers=project.headers), 201)
    return str(body["id"])


def add_user(
    client: httpx.Client,
    project: Project,
    user_id: str,
    properties: dict[str, Any],
    devices: list[dict[str, Any]] | None = None,
) -> None:
    ok(
        client.post(
            "/api/v1/users",
            json={"project_user_id": user_id, "properties": properties},
            headers=project.headers,
        )
    )
    for device in devices if devices is not None else [{"id": f"dev-{user_id}"}]:
        full = {
            "platform": "ANDROID",
            "push_token": f"token-{device['id']}",
            "is_push_permission_granted": True,
            **device,
        }
        ok(client.post("/api/v1/devices", json={"devices": [full]}, headers=project.sdk_headers))
        ok(
            client.post(
                f"/api/v1/devices/{device['id']}/user/project-user-id",
                json={"project_user_id": user_id},
                headers=project.sdk_headers,
            )
        )


def store_pickup(client: httpx.Client, project: Project) -> str:
    """The seed's example: staff and customers in two cities. Returns the campaign id."""
    campaign_id = create_campaign(client, project, PICKUP)
    people = [
        ("sf-staff-1", "store_staff", "San Francisco"),
        ("sf-staff-2", "store_staff", "San Francisco"),
        ("ny-staff-1", "store_staff", "New York"),
        ("sf-cust-1", "customer", "San Francisco"),
        ("ny-cust-1", "customer", "New York"),
    ]
    for user_id, role, city in people:
        add_user(
            client,
            project,
            user_id,
            {"user_role": role, "store_location": city, "first_name": user_id.upper()},
        )
    return campaign_id


def trigger(
    client: httpx.Client, project: Project, campaign_id: str, body: Any = None, **kw: Any
) -> httpx.Response:
    return client.post(
        f"/api/v1/campaigns/{campaign_id}:trigger",
        json=body,
        headers={**project.headers, **kw.pop("headers", {})},
        **kw,
    )


def redis_or_skip() -> redis.Redis:
    """A client for the local Redis; without one, skip (under CI=true, fail)."""
    client = redis.Redis(host=os.environ.get("REDIS_HOST", "127.0.0.1"), port=6379)
    try:
        client.ping()
    except redis.ConnectionError:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("Redis is not running here (CI requires it)")
    return client


def metric_values(text: str) -> dict[str, float]:
    """Prometheus text format: sample name with labels -> value."""
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def queued_engine() -> BuiltinEngine:
    """An engine that delivers nothing on the resolving thread (neither a trigger's first
    chunk nor its last): every chunk waits as a deliver job."""
    engine = BuiltinEngine()
    engine.inline_delivery = False  # type: ignore[misc]
    return engine
