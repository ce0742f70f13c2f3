"""`clarion serve --no-worker` accepts, `clarion worker` delivers; SIGTERM drains a worker
(it finishes the jobs it holds and exits, leaving none running), and a new worker finishes
the trigger with exactly one message per recipient."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from clarion.storage.db import Database
from clarion.storage.models import Job, Message
from tests.conftest import free_port, make_project
from tests.helpers import metric_values
from tests.test_restart import (
    N,
    assert_each_reached_once,
    clarion_env,
    seed,
    start,
    trigger_everyone,
)


def start_worker(db_url: str, var: Path, *args: str) -> subprocess.Popen[str]:
    # One chunk (50 recipients, 200 ms at the sink) per claim: a broadcast takes seconds.
    env = clarion_env(db_url, var, CLARION_WORKER_BATCH_SIZE="1")
    return subprocess.Popen(
        [sys.executable, "-m", "clarion.cli", "worker", *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def count(db: Database, *where: Any) -> int:
    with db.read() as session:
        return int(session.scalar(select(func.count()).select_from(Message).where(*where)) or 0)


def running_jobs(db: Database) -> int:
    with db.read() as session:
        return int(session.scalar(select(func.count()).where(Job.status == "running")) or 0)


def test_api_nodes_accept_and_a_worker_process_delivers_and_drains(
    db_url: str, db: Database, tmp_path: Path
) -> None:
    project = make_project(db)
    seed(db, project.id)
    var = tmp_path / "var"
    api, client = start(db_url, var, "--no-worker")
    metrics_port = free_port()
    worker = start_worker(db_url, var, "--concurrency", "2", "--metrics-port", str(metrics_port))
    try:
        trigger_id = trigger_everyone(client, project)
        deadline = time.monotonic() + 30
        while count(db, Message.status == "sent") < 200 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert count(db, Message.status == "sent") >= 200, "the worker process delivers"
        # Each process reports what it did; the queue is the shared one, from the database.
        api_metrics = metric_values(httpx.get(f"{client.base_url}/metrics").text)
        assert api_metrics["clarion_triggers_accepted_total"] == 1
        assert api_metrics.get('clarion_messages_total{channel="push",status="sent"}', 0) == 0
        worker_metrics = metric_values(httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text)
        sent_key = 'clarion_messages_total{channel="push",status="sent"}'
        assert worker_metrics.get(sent_key, 0) >= 200, sorted(worker_metrics)
        assert worker_metrics['clarion_provider_batch_seconds_count{provider="push"}'] >= 4
        assert worker_metrics['clarion_queue_jobs{kind="deliver",status="queued"}'] >= 1

        worker.send_signal(signal.SIGTERM)  # mid-broadcast
        output, _ = worker.communicate(timeout=30)
        assert worker.returncode == 0, output
        assert "draining" in output and "worker stopped" in output
        assert running_jobs(db) == 0  # finished what it held: nothing left for a lease
        at_stop = count(db, Message.status == "sent")
        assert at_stop < N, "the stop must land mid-broadcast"
        time.sleep(0.5)
        assert count(db, Message.status == "sent") == at_stop  # the API node sends nothing

        worker = start_worker(db_url, var)
        assert_each_reached_once(client, project, trigger_id, db, timeout=60)
        assert count(db, Message.possible_duplicate.is_(True)) == 0  # a drain, not a crash
    finally:
        for proc in (worker, api):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(30)
        client.close()
