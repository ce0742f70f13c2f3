"""Seed the demo project through the public HTTP API (in-process, no port needed)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from clarion.auth import service as auth
from clarion.auth.keys import SCOPES
from clarion.auth.repository import list_keys, list_projects
from clarion.campaigns import service as campaigns
from clarion.campaigns.files import load_spec
from clarion.storage.db import Database

CAMPAIGN_FILE = Path(__file__).with_name("new-pickup-order.yaml")
PROJECT_NAME = "Demo store"
RUN_KEY_NAME = "make-run demo key"

# (project_user_id, role, city, devices: (device id, platform, token, permission))
PEOPLE: list[tuple[str, str, str, list[tuple[str, str, str | None, bool]]]] = [
    (
        "staff-sf-alice",
        "store_staff",
        "San Francisco",
        [("dev-alice-phone", "android", "fcm-alice", True)],
    ),
    (
        "staff-sf-bob",
        "store_staff",
        "San Francisco",
        [("dev-bob-iphone", "ios", "apns-bob", True), ("dev-bob-ipad", "ios", None, False)],
    ),
    (
        "staff-ny-carol",
        "store_staff",
        "New York",
        [("dev-carol-phone", "android", "fcm-carol", True)],
    ),
    ("staff-austin-dan", "store_staff", "Austin", [("dev-dan-phone", "ios", "apns-dan", True)]),
    ("cust-sf-erin", "customer", "San Francisco", [("dev-erin-phone", "ios", "apns-erin", True)]),
    ("cust-ny-frank", "customer", "New York", [("dev-frank-phone", "android", "fcm-frank", True)]),
    ("cust-austin-gina", "customer", "Austin", [("dev-gina-phone", "android", "fcm-gina", True)]),
]

SAMPLE_PROPERTIES = {
    "store_location": "San Francisco",
    "order_id": "ORD-12345",
    "customer_name": "Jamie Chen",
    "item_count": 3,
    "pickup_time": "2:30 PM",
}


@dataclass(frozen=True)
class DemoInfo:
    project_id: str
    campaign_id: str
    secret_key: str


def ensure_demo(app: FastAPI, db: Database) -> DemoInfo:
    """Create the demo project on first start; on every start mint a fresh demo key (keys are
    stored hashed, so the previous one cannot be shown again) and revoke the last one."""
    with db.write() as session:
        project = next((p for p in list_projects(session) if p.name == PROJECT_NAME), None)
        fresh = project is None
        if project is None:
            project = auth.create_project(session, PROJECT_NAME, ["myshop"])  # the demo's links
        for key in list_keys(session, project.id):
            if key.name == RUN_KEY_NAME and key.revoked_at is None:
                auth.revoke_key(session, project.id, key.id)
        secret = auth.create_key(session, project.id, "secret", RUN_KEY_NAME, SCOPES).plaintext
        public = (
            auth.create_key(session, project.id, "public", "demo SDK key").plaintext
            if fresh
            else ""
        )
        project_id = project.id
    if fresh:
        asyncio.run(_seed(app, project_id, secret, public))
    with db.read() as session:
        campaign = next(
            c for c in campaigns.list_campaigns(session, project_id) if c.name == "New pickup order"
        )
        return DemoInfo(project_id=project_id, campaign_id=campaign.id, secret_key=secret)


async def _seed(app: FastAPI, project_id: str, secret: str, public: str) -> None:
    server = {"X-Clix-Project-ID": project_id, "X-Clix-API-Key": secret}
    sdk = {"X-Clix-Project-ID": project_id, "X-Clix-API-Key": public}
    # ASGITransport does not run the app's lifespan, so no worker starts here.
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://demo"
    ) as client:
        await _seed_with(client, server, sdk)


async def _seed_with(
    client: httpx.AsyncClient, server: dict[str, str], sdk: dict[str, str]
) -> None:
    spec = load_spec(CAMPAIGN_FILE)
    _ok(
        await client.post(
            "/api/v1/campaigns:apply", json=spec.model_dump(mode="json"), headers=server
        )
    )
    for user_id, role, city, devices in PEOPLE:
        props = {
            "user_role": role,
            "store_location": city,
            "first_name": user_id.split("-")[-1].title(),
        }
        _ok(
            await client.post(
                "/api/v1/users",
                json={"project_user_id": user_id, "properties": props},
                headers=server,
            )
        )
        for device_id, platform, token, permission in devices:
            device: dict[str, Any] = {
                "id": device_id,
                "platform": platform.upper(),
                "os_name": "iOS" if platform == "ios" else "Android",
                "locale_region": "US",
                "locale_language": "en",
                "timezone": "America/Los_Angeles" if "sf" in user_id else "America/New_York",
                "app_name": "MyShop Staff",
                "app_version": "3.4.0",
                "sdk_type": "native",
                "sdk_version": "1.0.0",
                "is_push_permission_granted": permission,
                "push_token": token or "",
                "push_token_type": "APNS" if platform == "ios" else "FCM",
            }
            _ok(await client.post("/api/v1/devices", json={"devices": [device]}, headers=sdk))
            _ok(
                await client.post(
                    f"/api/v1/devices/{device_id}/user/project-user-id",
                    json={"project_user_id": user_id},
                    headers=sdk,
                )
            )


def _ok(response: Any) -> None:
    if response.status_code >= 300:
        raise RuntimeError(f"demo seeding failed: {response.status_code} {response.text}")


def curl_command(base_url: str, info: DemoInfo) -> str:
    body = json.dumps({"audience": {"broadcast": True}, "properties": SAMPLE_PROPERTIES})
    return (
        f"curl -sS -X POST '{base_url}/api/v1/campaigns/{info.campaign_id}:trigger' \\\n"
        f"  -H 'Content-Type: application/json' \\\n"
        f"  -H 'X-Clix-Project-ID: {info.project_id}' \\\n"
        f"  -H 'X-Clix-API-Key: {info.secret_key}' \\\n"
        f"  -d '{body}'"
    )
