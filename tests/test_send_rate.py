"""A campaign's send rate holds within 10% through the real pipeline and runner; messages
over it wait queued (not counted as attempts) and nothing is lost."""

from __future__ import annotations

from datetime import datetime

from clarion.storage.db import Database
from tests.conftest import Server, make_project
from tests.helpers import add_user, create_campaign, ok

RATE = 40.0
USERS = 160


def test_the_send_rate_holds_within_ten_percent(server: Server, db: Database) -> None:
    project = make_project(db)
    campaign_id = create_campaign(
        server.client,
        project,
        {"name": "paced", "status": "active", "send_rate": RATE, "message": {"title": "Hi"}},
    )
    shown = ok(server.client.get(f"/api/v1/campaigns/{campaign_id}", headers=project.headers))
    assert shown["version"] == 1
    for i in range(USERS):
        add_user(server.client, project, f"u-{i}", {}, [
            {"id": f"d-{i}", "platform": "ios", "push_token": f"t-{i}",
             "is_push_permission_granted": True}])  # fmt: skip
    trigger_id, status = server.fire(project, campaign_id, {})
    assert status["status"] == "completed", status
    assert status["counts"]["sent"] == USERS  # nothing lost
    messages = server.messages(project, trigger_id, limit=1000)
    assert all(m["attempts"] == 1 for m in messages)  # waiting is not an attempt
    times = sorted(datetime.fromisoformat(m["sent_at"]) for m in messages)
    elapsed = (times[-1] - times[0]).total_seconds()
    measured = (USERS - 1) / elapsed
    print(f"send rate {RATE:g}/s: measured {measured:.1f}/s over {elapsed:.2f} s")
    assert abs(measured - RATE) <= 0.1 * RATE, f"{measured:.1f}/s for a rate of {RATE:g}/s"
