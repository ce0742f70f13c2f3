"""Every example in examples/ runs against a live Clarion server and does what it says."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from clarion.storage.db import Database
from tests.conftest import Project, Server, free_port, make_project
from tests.helpers import add_user, create_campaign

EXAMPLES = Path(__file__).parents[1] / "examples"
DEVICE = {"id": "d-1", "platform": "ios", "push_token": "t", "is_push_permission_granted": True}


def setup(server: Server, db: Database) -> tuple[Project, str, dict[str, str]]:
    project = make_project(db)
    campaign_id = create_campaign(server.client, project, {
        "name": "pickup", "status": "active",
        "message": {"title": "Order {{ trigger.order_id }} at {{ trigger.store_location }}"},
        "audience": {"conditions": [{"attribute": "store", "operator": "equals",
                                     "value": "{{ trigger.store_location }}"}]},
    })  # fmt: skip
    add_user(server.client, project, "staff-1", {"store": "Gangnam"}, [DEVICE])
    env = {**os.environ, "CLIX_PROJECT_ID": project.id, "CLIX_API_KEY": project.secret,
           "CLIX_BASE_URL": server.url, "PICKUP_CAMPAIGN_ID": campaign_id}  # fmt: skip
    return project, campaign_id, env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60,
                          cwd=EXAMPLES.parent)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def titles(server: Server, project: Project, trigger_id: str) -> list[str]:
    server.wait_done(project, trigger_id)
    return [m["title"] for m in server.messages(project, trigger_id)]


def test_plain_script(server: Server, db: Database) -> None:
    project, campaign_id, env = setup(server, db)
    out = run([sys.executable, "examples/trigger_script.py", campaign_id,
               "store_location=Gangnam", "order_id=A-1"], env)  # fmt: skip
    trigger_id = out.stdout.strip()
    assert titles(server, project, trigger_id) == ["Order A-1 at Gangnam"]
    assert "trigger accepted" in out.stderr and project.secret not in out.stderr


def test_order_endpoint(server: Server, db: Database) -> None:
    project, _campaign_id, env = setup(server, db)
    port = free_port()
    app = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "examples.order_endpoint:app", "--port", str(port),
         "--log-level", "warning"],
        env=env, cwd=EXAMPLES.parent,
    )  # fmt: skip
    try:
        order = {"order_id": "O-9", "store_location": "Gangnam", "customer_name": "Ann",
                 "item_count": 2}  # fmt: skip
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            for _ in range(100):
                try:
                    first = http.post("/orders", json=order)
                    break
                except httpx.ConnectError:
                    time.sleep(0.1)
            again = http.post("/orders", json=order)  # the client retried its POST
    finally:
        app.terminate()
        app.wait(10)
    assert first.status_code == 200 and again.status_code == 200
    assert again.json()["duplicate"] is True
    assert again.json()["trigger_id"] == first.json()["trigger_id"]
    assert titles(server, project, first.json()["trigger_id"]) == ["Order O-9 at Gangnam"]


def test_background_job_with_dedupe(server: Server, db: Database, tmp_path: Path) -> None:
    project, campaign_id, env = setup(server, db)
    out = run([sys.executable, "examples/background_job.py", campaign_id, "J-1", "Gangnam",
               f"sqlite:///{tmp_path / 'dedupe.db'}"], env).stdout.split("\n")  # fmt: skip
    first, second = out[0].split(), out[1].split()
    assert first[1] == "sent" and second == [first[0], "duplicate"]
    assert titles(server, project, first[0]) == ["Order J-1 at Gangnam"]


def test_async_client(server: Server, db: Database) -> None:
    _project, campaign_id, env = setup(server, db)
    out = run([sys.executable, "examples/async_trigger.py", campaign_id, "Gangnam"], env)
    _trigger_id, status, sent = out.stdout.split()
    assert (status, sent) == ("completed", "1")


def test_node_fetch(server: Server, db: Database) -> None:
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node is needed for the Node example in CI")
        pytest.skip("node is not installed here (CI requires it)")
    project, campaign_id, env = setup(server, db)
    trigger_id = run([node, "examples/trigger_node.mjs", campaign_id, "Gangnam"], env)
    assert titles(server, project, trigger_id.stdout.strip()) == ["Order N-1 at Gangnam"]
