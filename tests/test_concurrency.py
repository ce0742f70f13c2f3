"""Many triggers at once: each gets its own id, is committed before its 200, and completes
with exactly its one message (the group commit and the batched worker at work)."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx

from clarion.storage.db import Database
from tests.conftest import Server, make_project
from tests.helpers import ONE_STAFF, PROPS, store_pickup


def test_fifty_parallel_single_target_triggers(server: Server, db: Database) -> None:
    project = make_project(db)
    campaign_id = store_pickup(server.client, project)

    async def fire() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        f"/api/v1/campaigns/{campaign_id}:trigger", json=ONE_STAFF,
                        headers=project.headers,
                    )
                    for _ in range(50)
                )
            )  # fmt: skip

    responses = asyncio.run(fire())
    assert [r.status_code for r in responses] == [200] * 50
    ids = [r.json()["trigger_id"] for r in responses]
    assert len(set(ids)) == 50
    for trigger_id in ids:
        status = server.wait_done(project, trigger_id)
        assert status["status"] == "completed"
        assert status["counts"]["sent"] == 1
    per_trigger = Counter(m["project_user_id"] for t in ids for m in server.messages(project, t))
    assert per_trigger == {"sf-staff-1": 50}


def test_changes_through_this_process_apply_at_once(server: Server, db: Database) -> None:
    """The key and campaign lookups are cached briefly; changes made here clear the cache."""
    project = make_project(db)
    campaign_id = store_pickup(server.client, project)
    c = server.client
    url = f"/api/v1/campaigns/{campaign_id}:trigger"
    assert c.post(url, json={"properties": PROPS}, headers=project.headers).status_code == 200
    c.post(f"/api/v1/campaigns/{campaign_id}:pause", headers=project.headers)
    r = c.post(url, json={"properties": PROPS}, headers=project.headers)
    assert r.json()["error"]["code"] == "campaign_not_triggerable"
    c.post(f"/api/v1/campaigns/{campaign_id}:activate", headers=project.headers)
    assert c.post(url, json={"properties": PROPS}, headers=project.headers).status_code == 200
