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
    # The runner visits a waiting chunk every half second and each visit sends what the bucket
    # holds, so the sends come in bursts. The pace is what has been sent by each visit since
    # the first send: the last visit is left out, as it comes up to one wait after the tokens
    # were there (the test's 160 messages, not the limiter, decide when it happens).
    seconds = [(t - times[0]).total_seconds() for t in times]
    visits = [i for i in range(1, len(seconds)) if i + 1 == len(seconds)
              or seconds[i + 1] - seconds[i] > 0.2]  # fmt: skip
    paces = [i / seconds[i] for i in visits[:-1] if seconds[i] > 1.0]
    print(f"send rate {RATE:g}/s: paces by visit {', '.join(f'{p:.1f}' for p in paces)}")
    assert paces, "the send should take several visits"
    assert all(abs(p - RATE) <= 0.1 * RATE for p in paces), f"{paces} for {RATE:g}/s"
