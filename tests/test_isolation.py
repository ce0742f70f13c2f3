"""Two projects can neither see nor trigger each other's campaigns, triggers or users."""

from __future__ import annotations

from clarion.storage.db import Database
from tests.conftest import Server, make_project
from tests.helpers import PROPS, ok, store_pickup, trigger


def test_projects_cannot_reach_each_other(server: Server, db: Database) -> None:
    a, b = make_project(db, "a"), make_project(db, "b")
    campaign_a = store_pickup(server.client, a)
    campaign_b = store_pickup(server.client, b)
    trigger_a = ok(trigger(server.client, a, campaign_a, {"properties": PROPS}))["trigger_id"]
    server.wait_done(a, trigger_a)
    c = server.client

    # B cannot trigger, read, change or list A's campaign.
    assert trigger(c, b, campaign_a, {"properties": PROPS}).json()["error"]["code"] == (
        "campaign_not_found"
    )
    assert c.get(f"/api/v1/campaigns/{campaign_a}", headers=b.headers).status_code == 400
    r = c.post(f"/api/v1/campaigns/{campaign_a}:pause", headers=b.headers)
    assert r.json()["error"]["code"] == "campaign_not_found"
    listed = ok(c.get("/api/v1/campaigns", headers=b.headers))["campaigns"]
    assert [x["id"] for x in listed] == [campaign_b]
    assert ok(c.get(f"/api/v1/campaigns/{campaign_a}", headers=a.headers))["status"] == "active"

    # B cannot read A's trigger or its message log; the answer equals an unknown id's.
    unknown = "01900000-0000-7000-8000-000000000000"
    for path in ("/api/v1/triggers/{}", "/api/v1/triggers/{}/messages"):
        foreign = c.get(path.format(trigger_a), headers=b.headers)
        missing = c.get(path.format(unknown), headers=b.headers)
        assert foreign.status_code == missing.status_code == 404
        assert foreign.json()["error"]["code"] == missing.json()["error"]["code"]

    # B's broadcast reaches only B's users, though both projects use the same user ids.
    trigger_b = ok(trigger(c, b, campaign_b, {"properties": PROPS}))["trigger_id"]
    server.wait_done(b, trigger_b)
    ids_b = {m["user_id"] for m in server.messages(b, trigger_b)}
    ids_a = {m["user_id"] for m in server.messages(a, trigger_a)}
    assert len(ids_b) == 2 and not ids_a & ids_b

    # Users: B deleting "sf-staff-1" leaves A's user of the same id alone.
    ok(c.delete("/api/v1/users/sf-staff-1", headers=b.headers))
    r = c.patch("/api/v1/users/sf-staff-1", json={"properties": {"x": 1}}, headers=b.headers)
    assert r.status_code == 404
    r = c.patch("/api/v1/users/sf-staff-1", json={"properties": {"x": 1}}, headers=a.headers)
    assert ok(r)["properties"]["x"] == 1
