"""The worker processes `clarion serve` runs beside its embedded worker (runner.helpers):
real `clarion worker --helper-of` processes that deliver from the same job table, drain on
SIGTERM and die with their server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from clarion.delivery.pipeline import Pipeline
from clarion.delivery.providers.registry import build_registry
from clarion.runner import jobs
from clarion.runner.helpers import HelperProcesses
from clarion.storage.models import Job
from tests.conftest import Server, free_port, make_project
from tests.helpers import PROPS, metric_values, queued_engine, store_pickup


def helper_env(monkeypatch: pytest.MonkeyPatch, server: Server) -> None:
    """What the server's worker processes inherit: its settings, as CLARION_* variables."""
    settings = server.settings
    monkeypatch.setenv("CLARION_DATABASE_URL", settings.resolved_database_url())
    monkeypatch.setenv("CLARION_VAR_DIR", str(settings.var_dir))
    monkeypatch.setenv("CLARION_DEMO", "false")
    monkeypatch.setenv("CLARION_POLL_INTERVAL_SECONDS", "0.05")


def threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def dead(pid: int) -> bool:
    """Gone, or a zombie nobody has reaped yet."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def test_a_worker_process_delivers_the_queued_chunks_and_drains(
    server_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server runs no embedded worker here. The test resolves the trigger itself, one
    message per chunk and per commit, with an engine that delivers nothing on the resolving
    thread, so that both chunks wait as deliver jobs; only then does the worker process
    start, and it must deliver them."""
    server: Server = server_factory(embedded_worker=False, chunk_size=1)
    helper_env(monkeypatch, server)
    monkeypatch.setenv("CLARION_CHUNK_SIZE", "1")
    db = server.app.state.clarion.db
    project = make_project(db)
    campaign_id = store_pickup(server.client, project)
    answer = server.client.post(f"/api/v1/campaigns/{campaign_id}:trigger",
                                json={"properties": PROPS}, headers=project.headers)  # fmt: skip
    trigger_id = answer.json()["trigger_id"]
    pipeline = Pipeline(db, build_registry(server.settings, db), chunk_size=1, group_rows=1,
                        engine=queued_engine())  # fmt: skip
    with db.write() as session:
        claimed = jobs.claim(session, 60, 10)
    assert [(j.kind, j.trigger_id) for j in claimed] == [("resolve", trigger_id)]
    pipeline.resolve([trigger_id])
    with db.read() as session:
        waiting = session.scalars(select(Job.kind).where(Job.trigger_id == trigger_id)).all()
    assert waiting == ["deliver", "deliver"]

    port = free_port()
    helpers = HelperProcesses(1, threads=1, metrics_port=port)  # CLARION_WORKER_METRICS_PORT
    helpers.start()
    try:
        status = server.wait_done(project, trigger_id, timeout=60)
        process = helpers.processes[0]
        # Its metrics server starts before its worker threads: one that delivered serves them.
        exported = metric_values(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)
    finally:
        helpers.stop()
    assert status["status"] == "completed" and status["counts"]["sent"] == 2, status
    # The worker process's own metrics: the messages it delivered, and its stage times.
    assert exported['clarion_messages_total{channel="push",status="sent"}'] == 2
    for stage in ("load", "render", "dispatch", "persist"):
        assert exported[f'clarion_pipeline_stage_seconds_total{{stage="{stage}"}}'] > 0, stage
    assert process.returncode == 0  # drained and stopped on SIGTERM, not killed
    sent = {m["project_user_id"] for m in server.messages(project, trigger_id)}
    assert sent == {"sf-staff-1", "sf-staff-2"}


def test_worker_processes_die_with_their_server(
    server_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server killed outright (SIGKILL, out of memory) takes its worker processes with
    it: on SQLite the next server resumes every job left running, which is only safe when
    nothing of the last one is still at work."""
    helper_env(monkeypatch, server_factory(embedded_worker=False))
    parent = subprocess.Popen(
        [sys.executable, "-c",
         "import time; from clarion.runner.helpers import HelperProcesses\n"
         "h = HelperProcesses(1, 1); h.start(); print(h.processes[0].pid, flush=True)\n"
         "time.sleep(120)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert parent.stdout is not None
    helper = int(parent.stdout.readline())
    deadline = time.monotonic() + 30
    while threads(helper) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)  # until its worker threads run (long past asking to die with it)
    assert threads(helper) >= 3 and not dead(helper)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait(10)
    deadline = time.monotonic() + 10
    while not dead(helper) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert dead(helper)
