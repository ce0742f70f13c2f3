"""The demo `make run` seeds and the walkthrough in the README describes."""

from __future__ import annotations

import json
import shlex

from clarion.app import create_app
from clarion.demo_data.seed import curl_command, ensure_demo
from clarion.storage.db import Database
from tests.conftest import Project, Server


def test_the_printed_curl_reaches_the_two_san_francisco_staff(server: Server, db: Database) -> None:
    seeding_app = create_app(server.settings, start_worker=False)  # as `clarion serve` does
    info = ensure_demo(seeding_app, db)
    again = ensure_demo(seeding_app, db)  # the next start: same project, a new key
    assert (again.project_id, again.campaign_id) == (info.project_id, info.campaign_id)
    assert again.secret_key != info.secret_key

    words = shlex.split(curl_command(server.url, again).replace("\\\n", " "))
    url = words[words.index("-X") + 2]
    headers = dict(words[i + 1].split(": ", 1) for i, w in enumerate(words) if w == "-H")
    body = json.loads(words[words.index("-d") + 1])
    r = server.client.post(url.removeprefix(server.url), json=body, headers=headers)
    assert r.status_code == 200, r.text
    project = Project(again.project_id, again.secret_key, "")
    status = server.wait_done(project, r.json()["trigger_id"])
    assert status["counts"] == {
        "matched": 3,
        "sent": 2,
        "failed": 0,
        "skipped": 1,
        "pending": 0,
        "cancelled": 0,
    }
    sent = server.messages(project, r.json()["trigger_id"], status="sent")
    assert {m["body"] for m in sent} == {
        "Order #ORD-12345 from Jamie Chen. 3 items ready by 2:30 PM."
    }
    # The previous start's key was revoked.
    old = {"X-Clix-Project-ID": info.project_id, "X-Clix-API-Key": info.secret_key}
    assert (
        server.client.post(url.removeprefix(server.url), json=body, headers=old).status_code == 401
    )
