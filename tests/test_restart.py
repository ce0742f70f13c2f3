"""A server killed in the middle of a trigger finishes it after a restart, with no duplicate."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, insert, select

from clarion.ids import uuid7
from clarion.storage.db import Database
from clarion.storage.models import Device, Message, Trigger, User, utcnow
from tests.conftest import free_port, make_project
from tests.helpers import PROPS, ok, store_pickup

N = 2000


def seed(db: Database, project_id: str) -> None:
    """Bulk rows (this test is about the pipeline, not ingestion)."""
    now = utcnow()
    user_rows = [
        {"id": uuid7(), "project_id": project_id, "project_user_id": f"u{i}",
         "properties": {"first_name": f"N{i}"}, "created_at": now, "updated_at": now}
        for i in range(N)
    ]  # fmt: skip
    device_rows = [
        {"project_id": project_id, "id": f"d{i}", "user_id": u["id"], "attributes": {},
         "platform": "IOS", "locale_region": "", "locale_language": "", "timezone": "",
         "is_push_permission_granted": True, "push_token": f"t{i}", "push_token_type": "APNS",
         "created_at": now, "updated_at": now}
        for i, u in enumerate(user_rows)
    ]  # fmt: skip
    with db.write() as session:
        session.execute(insert(User), user_rows)
        session.execute(insert(Device), device_rows)


def start(
    db_url: str, var: Path, *args: str, **settings: str
) -> tuple[subprocess.Popen[bytes], httpx.Client]:
    """`clarion serve ARGS` on its own port, settings as CLARION_* variables; waits until it
    answers."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "clarion.cli", "serve", *args],
        env=clarion_env(db_url, var, CLARION_PORT=str(port), **settings),
        stdout=subprocess.DEVNULL, stderr=None,
    )  # fmt: skip
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    deadline = time.monotonic() + 30
    while True:
        try:
            if client.get("/api/v1/health").status_code == 200:
                return proc, client
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("clarion serve did not start")
        time.sleep(0.05)


def clarion_env(db_url: str, var: Path, **settings: str) -> dict[str, str]:
    return dict(
        os.environ,
        CLARION_DATABASE_URL=db_url,
        CLARION_VAR_DIR=str(var),
        CLARION_DEMO="false",
        CLARION_CHUNK_SIZE="50",
        CLARION_SINK_LATENCY_MS="200",  # a wide window for the kill to land mid-send
        CLARION_WORKER_THREADS="1",
        CLARION_POLL_INTERVAL_SECONDS="0.05",
        CLARION_JOB_LEASE_SECONDS="5",  # PostgreSQL resumes a dead process's jobs at lease end
        **settings,
    )


def trigger_everyone(client: httpx.Client, project: Any) -> str:
    """Create a campaign for every user (personalised title) and trigger it; its id."""
    spec: dict[str, Any] = {"name": "all", "status": "active",
                            "message": {"title": "Hi {{ user.first_name }}"}}  # fmt: skip
    campaign = ok(client.post("/api/v1/campaigns", json=spec, headers=project.headers), 201)
    return str(ok(client.post(f"/api/v1/campaigns/{campaign['id']}:trigger",
                              headers=project.headers))["trigger_id"])  # fmt: skip


def assert_each_reached_once(
    client: httpx.Client, project: Any, trigger_id: str, db: Database, timeout: float
) -> None:
    """Wait for the trigger to complete: all N recipients sent, one message each."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(f"/api/v1/triggers/{trigger_id}", headers=project.headers).json()
        if status["status"] == "completed":
            break
        time.sleep(0.1)
    assert status["counts"] == {"matched": N, "sent": N, "failed": 0, "skipped": 0,
                                "pending": 0, "cancelled": 0}  # fmt: skip
    with db.read() as session:
        pairs = session.execute(select(Message.user_id, Message.device_id)).all()
    assert len(pairs) == len(set(pairs)) == N


def sent_count(db: Database) -> int:
    with db.read() as session:
        stmt = select(func.count()).where(Message.status == "sent")
        return int(session.scalar(stmt) or 0)


def test_kill_mid_trigger_then_restart_completes_without_duplicates(
    db_url: str, db: Database, tmp_path: Path
) -> None:
    project = make_project(db)
    seed(db, project.id)
    proc, client = start(db_url, tmp_path / "var")
    try:
        trigger_id = trigger_everyone(client, project)
        deadline = time.monotonic() + 30
        while sent_count(db) < 300 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        client.close()
    at_kill = sent_count(db)
    assert 300 <= at_kill < N, "the kill must land mid-trigger"

    proc, client = start(db_url, tmp_path / "var")
    try:
        assert_each_reached_once(client, project, trigger_id, db, timeout=60)
    finally:
        proc.terminate()
        proc.wait(10)
        client.close()

    with db.read() as session:
        rows = session.execute(
            select(Message.id, Message.user_id, Message.device_id, Message.possible_duplicate)
        ).all()
    assert len(rows) == N
    assert len({(r.user_id, r.device_id) for r in rows}) == N
    # The provider saw every message; a message handed over twice (killed between the
    # hand-over and recording it) is marked possible_duplicate, never silently resent.
    outbox = tmp_path / "var" / "outbox.jsonl"
    handed = Counter(json.loads(line)["data"]["clix"]["message_id"] for line in outbox.open())
    assert set(handed) == {r.id for r in rows}
    flagged = {r.id for r in rows if r.possible_duplicate}
    assert {m for m, n in handed.items() if n > 1} <= flagged


def test_a_trigger_accepted_by_a_process_that_then_stops_completes_at_the_next_start(
    server_factory: Any, db: Database
) -> None:
    """The 200 means durable: the trigger and its first job were committed together."""
    first = server_factory(embedded_worker=False)  # accepts, never delivers
    project = make_project(db)
    campaign_id = store_pickup(first.client, project)
    trigger_id = ok(
        first.client.post(f"/api/v1/campaigns/{campaign_id}:trigger",
                          json={"properties": PROPS}, headers=project.headers)
    )["trigger_id"]  # fmt: skip
    assert first.wait_done(project, trigger_id, timeout=0.3)["status"] == "accepted"
    second = server_factory()  # same database, with a worker
    status = second.wait_done(project, trigger_id)
    assert status["status"] == "completed" and status["counts"]["sent"] == 2


def test_sigterm_under_load_drops_no_accepted_trigger(
    db_url: str, db: Database, tmp_path: Path
) -> None:
    """Stopping the server while triggers stream in: every trigger that got its 200 is in
    the database with its job, and completes at the next start."""
    project = make_project(db)
    proc, client = start(db_url, tmp_path / "var")
    campaign_id = store_pickup(client, project)
    accepted: list[str] = []
    stop = threading.Event()

    def fire() -> None:
        with httpx.Client(base_url=client.base_url, timeout=10) as own:
            while not stop.is_set():
                try:
                    r = own.post(f"/api/v1/campaigns/{campaign_id}:trigger",
                                 json={"properties": PROPS}, headers=project.headers)  # fmt: skip
                except httpx.TransportError:
                    return  # the server has gone: this request was not accepted
                if r.status_code == 200:
                    accepted.append(r.json()["trigger_id"])
                else:
                    assert r.status_code == 503, r.text  # never a 500 while stopping

    threads = [threading.Thread(target=fire) for _ in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while len(accepted) < 100 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)  # mid-stream
    proc.wait(30)
    stop.set()
    for t in threads:
        t.join(10)
    client.close()
    assert len(accepted) >= 100
    with db.read() as session:
        stored = set(session.scalars(select(Trigger.id).where(Trigger.id.in_(accepted))))
    assert stored == set(accepted)

    proc, client = start(db_url, tmp_path / "var")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with db.read() as session:
                left = session.scalar(select(func.count()).where(
                    Trigger.id.in_(accepted), Trigger.status != "completed"))  # fmt: skip
            if not left:
                break
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(10)
        client.close()
    assert left == 0
