"""CLARION_TASK_ENGINE=procrastinate: API nodes defer Procrastinate jobs in the trigger's own
commit, `clarion worker` processes run them, a worker killed mid-broadcast loses nothing (its
jobs are retried once its heartbeat is older than the lease) and SIGTERM drains a worker."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from clarion.messages.repository import being_sent
from clarion.runner.worker import EngineUnavailable
from clarion.storage.db import Database
from clarion.storage.models import Message
from tests.conftest import Server, make_project
from tests.helpers import ONE_STAFF, store_pickup
from tests.test_restart import (
    N,
    assert_each_reached_once,
    clarion_env,
    seed,
    start,
    trigger_everyone,
)
from tests.test_worker_process import count

ENGINE = {"CLARION_TASK_ENGINE": "procrastinate"}


def start_worker(db_url: str, var: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "clarion.cli", "worker", *args],
        env=clarion_env(db_url, var, **ENGINE),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def test_procrastinate_needs_postgresql_or_runs_a_broadcast_through_a_killed_worker(
    db_url: str, db: Database, tmp_path: Path
) -> None:
    var = tmp_path / "var"
    if db.is_sqlite:
        refused = start_worker(db_url, var)
        output, _ = refused.communicate(timeout=60)
        assert refused.returncode == 2, output
        assert "CLARION_TASK_ENGINE=procrastinate needs PostgreSQL" in output
        return

    project = make_project(db)
    seed(db, project.id)
    api, client = start(db_url, var, "--no-worker", **ENGINE)
    workers: list[subprocess.Popen[str]] = []
    try:
        trigger_id = trigger_everyone(client, project)
        # Committed with the trigger: its resolve job, waiting in Procrastinate's table.
        job = text("SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'clarion.resolve'"
                   " AND args->>'trigger_id' = :t AND status = 'todo'")  # fmt: skip
        with db.read() as session:
            assert session.scalar(job, {"t": trigger_id}) == 1

        workers = [start_worker(db_url, var, "--concurrency", "2") for _ in range(2)]
        deadline = time.monotonic() + 60
        while count(db, Message.status == "sent") < 300 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert count(db, Message.status == "sent") >= 300, "the workers deliver"
        workers[0].send_signal(signal.SIGKILL)  # mid-broadcast, mid-send
        workers[0].wait(10)
        with db.read() as session:
            in_flight = being_sent(session)
        assert count(db, Message.status == "sent") < N, "the kill must land mid-broadcast"
        workers.append(start_worker(db_url, var, "--concurrency", "2"))
        workers[1].send_signal(signal.SIGTERM)  # a drain, mid-broadcast: finishes, exits 0
        output, _ = workers[1].communicate(timeout=60)
        assert workers[1].returncode == 0 and "worker stopped" in output, output

        assert_each_reached_once(client, project, trigger_id, db, timeout=90)
        with db.read() as session:
            left = session.scalar(text("SELECT count(*) FROM procrastinate_jobs "
                                       "WHERE status IN ('todo', 'doing')"))  # fmt: skip
        # Only what the killed worker had in flight may have gone out twice, and is marked.
        assert count(db, Message.possible_duplicate.is_(True)) <= in_flight
        assert left == 0
    finally:
        for proc in [*workers, api]:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(30)

        client.close()


def test_serve_runs_procrastinate_in_process_or_refuses_sqlite(
    server_factory: Any, db: Database
) -> None:
    """`clarion serve` with its embedded worker on the Procrastinate engine: a trigger goes
    through Procrastinate's tables inside the one process."""
    if db.is_sqlite:
        with pytest.raises(EngineUnavailable, match="needs PostgreSQL"):
            server_factory(task_engine="procrastinate")
        return
    server: Server = server_factory(task_engine="procrastinate")
    project = make_project(db)
    campaign_id = store_pickup(server.client, project)
    _, status = server.fire(project, campaign_id, ONE_STAFF)
    assert status["status"] == "completed" and status["counts"]["sent"] == 1, status
    # Its jobs ran and were deleted on success: Procrastinate deletes a job after its task
    # returns, in a transaction of its own, so just after the trigger's completing commit.
    deadline = time.monotonic() + 10
    while True:
        with db.read() as session:
            left = session.scalar(text("SELECT count(*) FROM procrastinate_jobs"))
        if left == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert left == 0
