"""Scale-out on one machine, PostgreSQL: a broadcast delivered by 1, 2 and 3 `clarion worker`
processes beside an API-only node, and trigger throughput with 1 and 2 API processes, on each
task engine (builtin and procrastinate, side by side in one run).

Every process is a real `clarion` subprocess on its own port or var directory, sharing one
fresh PostgreSQL database (made and dropped here) and one secret key; the provider is the
sink (the development provider: it appends each message to a file, nothing more). Each
worker count gets a new broadcast to the same users, timed from the 200 to the trigger's
completion.

    python bench/scaleout.py [--recipients 100000] [--workers 1 2 3]
                             [--engines builtin procrastinate] [--admin-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import psycopg
from cryptography.fernet import Fernet
from sqlalchemy import insert, select

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import build_request, run_load
from trigger import free_port

from clarion.auth import service as auth
from clarion.auth.keys import SCOPES
from clarion.ids import uuid7
from clarion.storage.db import Database
from clarion.storage.migrate import upgrade
from clarion.storage.models import Device, Trigger, User
from clarion.triggers import amplification

SPEC = {"name": "everyone", "status": "active",
        "message": {"title": "Hi {{ user.first_name | default: 'there' }}"}}  # fmt: skip


def seed(db: Database, recipients: int) -> tuple[str, str]:
    with db.write() as session:
        project = auth.create_project(session, "scaleout")
        auth.set_rate_limit(session, project.id, 1_000_000)
        amplification.set_multiplier(session, project.id, 1_000)
        key = auth.create_key(session, project.id, "secret", "bench", SCOPES).plaintext
    now = datetime.now(UTC)
    for start in range(0, recipients, 10_000):
        users, devices = [], []
        for i in range(start, min(recipients, start + 10_000)):
            uid = uuid7()
            users.append({"id": uid, "project_id": project.id, "project_user_id": f"u{i}",
                          "properties": {"first_name": f"F{i}"}, "created_at": now,
                          "updated_at": now})  # fmt: skip
            devices.append({"project_id": project.id, "id": f"d{i}", "user_id": uid,
                            "attributes": {}, "platform": "ANDROID", "locale_region": "US",
                            "locale_language": "en", "timezone": "UTC",
                            "is_push_permission_granted": True, "push_token": f"t{i}",
                            "push_token_type": "FCM", "created_at": now,
                            "updated_at": now})  # fmt: skip
        with db.write() as session:
            session.execute(insert(User), users)
            session.execute(insert(Device), devices)
    with db.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
    return project.id, key


class Fleet:
    """The subprocesses of one run; all stopped (SIGTERM, then SIGKILL) at the end."""

    def __init__(self, env: dict[str, str], work: Path) -> None:
        self.env, self.work = env, work
        self.procs: list[subprocess.Popen[bytes]] = []

    def api(self, engine: str) -> int:
        port = free_port()
        var = self.work / f"api-{port}"
        self._start(["serve", "--no-worker"], var, CLARION_PORT=str(port),
                    CLARION_TASK_ENGINE=engine)  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v1/health").status_code == 200:
                    return port
            except httpx.TransportError:
                time.sleep(0.1)
        raise SystemExit("an API process did not start")

    def worker(self, concurrency: int, engine: str) -> subprocess.Popen[bytes]:
        return self._start(["worker", "--concurrency", str(concurrency)],
                           self.work / f"worker-{len(self.procs)}",
                           CLARION_TASK_ENGINE=engine)  # fmt: skip

    def _start(self, args: list[str], var: Path, **extra: str) -> subprocess.Popen[bytes]:
        env = dict(self.env, CLARION_VAR_DIR=str(var), **extra)
        proc = subprocess.Popen([sys.executable, "-m", "clarion.cli", *args], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        self.procs.append(proc)
        return proc

    def stop_workers(self, workers: list[subprocess.Popen[bytes]]) -> None:
        for proc in workers:
            proc.send_signal(signal.SIGTERM)
        for proc in workers:
            proc.wait(60)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def broadcast(db: Database, port: int, headers: dict[str, str], campaign_id: str) -> float:
    r = httpx.post(f"http://127.0.0.1:{port}/api/v1/campaigns/{campaign_id}:trigger",
                   json={"audience": {"broadcast": True}}, headers=headers, timeout=30)  # fmt: skip
    r.raise_for_status()
    started = time.perf_counter()
    trigger_id = r.json()["trigger_id"]
    while True:
        with db.read() as session:
            status = session.scalar(select(Trigger.status).where(Trigger.id == trigger_id))
        if status in ("completed", "failed"):
            if status == "failed":
                raise SystemExit(f"the broadcast failed: {trigger_id}")
            return time.perf_counter() - started
        time.sleep(0.05)


def trigger_rate(ports: list[int], headers: dict[str, str], campaign_id: str) -> float:
    body = orjson.dumps({"audience": {"targets": [{"project_user_id": "u1"}]}})
    raws = [build_request("POST", f"/api/v1/campaigns/{campaign_id}:trigger",
                          {**headers, "Content-Type": "application/json"}, body)
            for _ in ports]  # fmt: skip

    async def run() -> float:
        results = await asyncio.gather(*(
            run_load("127.0.0.1", port, raw, concurrency=32 // len(ports), duration=8)
            for port, raw in zip(ports, raws, strict=True)))  # fmt: skip
        for r in results:
            if set(r.statuses) != {200}:
                raise SystemExit(f"trigger answers were not all 200: {r.statuses}")
        return sum(r.rate for r in results)

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--concurrency", type=int, default=2, help="threads per worker")
    parser.add_argument("--engines", nargs="+", default=["builtin", "procrastinate"],
                        choices=["builtin", "procrastinate"])  # fmt: skip
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    name = f"clarion_scaleout_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = args.admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    url = f"{url}/{name}"
    work = Path(tempfile.mkdtemp(prefix="clarion-scaleout-"))
    fleet: Fleet | None = None
    try:
        upgrade(url)
        db = Database(url)
        started = time.perf_counter()
        project_id, key = seed(db, args.recipients)
        print(f"seeded {args.recipients:,} users with a device each in "
              f"{time.perf_counter() - started:.1f} s")  # fmt: skip
        env = dict(os.environ, CLARION_DATABASE_URL=url, CLARION_DEMO="false",
                   CLARION_SECRET_KEY=Fernet.generate_key().decode(),
                   CLARION_LOG_LEVEL="warning")  # fmt: skip
        fleet = Fleet(env, work)
        headers = {"X-Clix-Project-ID": project_id, "X-Clix-API-Key": key}
        campaign_id = ""
        for engine in args.engines:
            port = fleet.api(engine)
            if not campaign_id:
                campaign = httpx.post(f"http://127.0.0.1:{port}/api/v1/campaigns", json=SPEC,
                                      headers=headers, timeout=30)  # fmt: skip
                campaign.raise_for_status()
                campaign_id = campaign.json()["id"]
            print(f"\n== {engine} engine ==")
            rates: dict[int, float] = {}
            for count in args.workers:
                workers = [fleet.worker(args.concurrency, engine) for _ in range(count)]
                time.sleep(1.0)  # started and polling
                seconds = broadcast(db, port, headers, campaign_id)
                rates[count] = args.recipients / seconds
                fleet.stop_workers(workers)
                print(f"{count} worker(s) x {args.concurrency} threads: {args.recipients:,} "
                      f"messages in {seconds:.1f} s = {rates[count]:,.0f} messages/s")  # fmt: skip
            base = rates[args.workers[0]]
            print("scaling: " + ", ".join(f"{n} workers {r / base:.2f}x" for n, r in rates.items()))
            one = trigger_rate([port], headers, campaign_id)
            two = trigger_rate([port, fleet.api(engine)], headers, campaign_id)
            print(f"triggers/s (no workers running, 32 clients): 1 API process {one:,.0f}, "
                  f"2 API processes {two:,.0f} ({two / one:.2f}x)")  # fmt: skip
        db.dispose()
    finally:
        if fleet is not None:
            fleet.close()
        with psycopg.connect(args.admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
