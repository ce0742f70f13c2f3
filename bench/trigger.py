"""Trigger throughput and latency against a real `clarion serve` (SQLite, embedded worker).

Prints accepted triggers/s and p50/p99 at 32 concurrent clients, the same for GET /health on
the same server in the same run (and the ratio), and the time from a trigger's 200 to its
single-target message being recorded as sent.

    python bench/trigger.py [--duration 8] [--concurrency 32] [--samples 200]

With ``--rate-limit L`` it measures the rate limiter instead: the project's limit is set to
L requests/s, triggers are sent open-loop at L/2 (unloaded) and then at 2L for
``--limited-duration`` seconds (60), and it prints the accepted rate, the 429 rate and the
accepted requests' p99 under both loads, with their ratio (the goal: at most 2).

    python bench/trigger.py --rate-limit 400 [--limited-duration 60]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import psycopg
from sqlalchemy import insert, select

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import Result, build_request, request_once, run_load, run_paced

from clarion.auth import service as auth
from clarion.campaigns import service as campaigns
from clarion.campaigns.files import load_spec
from clarion.ids import uuid7
from clarion.storage.db import Database
from clarion.storage.migrate import upgrade
from clarion.storage.models import Device, Job, Message, Trigger, User, UserProperty

CAMPAIGN = Path(__file__).resolve().parents[1] / "src/clarion/demo_data/new-pickup-order.yaml"
CITIES = [f"City {i}" for i in range(20)]


def seed(db: Database, rate_limit: int) -> tuple[str, str, str]:
    """A project, the pickup campaign, 5 staff and 50 customers per city (1,100 users)."""
    with db.write() as session:
        project = auth.create_project(session, "bench", ["myshop"])
        auth.set_rate_limit(session, project.id, rate_limit)
        key = auth.create_key(session, project.id, "secret").plaintext
        campaign, _ = campaigns.apply(session, project.id, load_spec(CAMPAIGN))
    now = datetime.now(UTC)
    users, devices, props = [], [], []
    for city in CITIES:
        for role, count in (("store_staff", 5), ("customer", 50)):
            for i in range(count):
                uid = uuid7()
                puid = f"{role}-{city}-{i}".replace(" ", "")
                properties = {"user_role": role, "store_location": city}
                users.append(
                    {
                        "id": uid,
                        "project_id": project.id,
                        "project_user_id": puid,
                        "properties": properties,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                devices.append(
                    {
                        "project_id": project.id,
                        "id": f"d-{puid}",
                        "user_id": uid,
                        "attributes": {},
                        "platform": "ANDROID",
                        "locale_region": "US",
                        "locale_language": "en",
                        "timezone": "UTC",
                        "is_push_permission_granted": True,
                        "push_token": f"t-{puid}",
                        "push_token_type": "FCM",
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                props += [{"user_id": uid, "key": k, "project_id": project.id, "value_text": v,
                           "value_num": None} for k, v in properties.items()]  # fmt: skip
    with db.write() as session:
        session.execute(insert(User), users)
        session.execute(insert(Device), devices)
        session.execute(insert(UserProperty), props)
    with db.engine.connect() as conn:  # fresh statistics, as a live database would have
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
    return project.id, key, campaign.id


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    raw = build_request("GET", "/api/v1/health", {})
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("clarion serve exited during start-up")
        try:
            if asyncio.run(request_once("127.0.0.1", port, raw))[0] == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("clarion serve did not become healthy")


def wait_drained(db: Database, timeout: float = 300) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        with db.read() as session:
            busy = session.scalars(
                select(Job.id).where(Job.status.in_(("queued", "running"))).limit(1)
            ).first()
        if busy is None:
            return time.perf_counter() - start
        time.sleep(0.1)
    raise SystemExit("the worker did not drain its backlog")


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:7.2f} ms"


def print_rates(h: Result, t: Result) -> None:
    print(f"{'':24}{'req/s':>10}{'p50':>12}{'p99':>12}")
    print(f"{'GET /health':24}{h.rate:10.0f}{fmt_ms(h.pct(50)):>12}{fmt_ms(h.pct(99)):>12}")
    print(f"{'POST :trigger':24}{t.rate:10.0f}{fmt_ms(t.pct(50)):>12}{fmt_ms(t.pct(99)):>12}")
    print(f"trigger/health throughput ratio: {t.rate / h.rate:.2f}")


def limited(port: int, trig: bytes, limit: int, duration: float) -> None:
    print(f"Clarion rate-limit benchmark: project limit {limit}/s; open-loop trigger load")
    calm = asyncio.run(run_paced("127.0.0.1", port, trig, rate=limit / 2, duration=10))
    busy = asyncio.run(run_paced("127.0.0.1", port, trig, rate=limit * 2, duration=duration))
    other = (set(calm.latencies) | set(busy.latencies)) - {200, 429}
    if other:
        raise SystemExit(f"unexpected answers: {sorted(other)}")
    print(f"{'':28}{'offered/s':>10}{'200/s':>9}{'429/s':>9}{'p50 200':>11}{'p99 200':>11}"
          f"{'p99 429':>11}")  # fmt: skip
    runs = (("unloaded (L/2, 10 s)", calm, limit / 2),
            (f"twice the limit (2L, {duration:.0f} s)", busy, limit * 2))  # fmt: skip
    for name, r, offered in runs:
        print(f"{name:28}{offered:10.0f}{r.rate(200):9.0f}{r.rate(429):9.0f}"
              f"{fmt_ms(r.pct(200, 50)):>11}{fmt_ms(r.pct(200, 99)):>11}"
              f"{fmt_ms(r.pct(429, 99)):>11}")  # fmt: skip
    print(
        f"accepted p99 at 2L / unloaded: {busy.pct(200, 99) / calm.pct(200, 99):.2f} "
        f"(goal <= 2); accepted/limit {busy.rate(200) / limit:.2f}; "
        f"client fell behind on {busy.late} of {sum(map(len, busy.latencies.values()))}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument(
        "--postgres",
        metavar="ADMIN_URL",
        nargs="?",
        const="postgresql://postgres@127.0.0.1:5432/postgres",
        help="run on a fresh PostgreSQL database made (and dropped) through ADMIN_URL",
    )
    parser.add_argument(
        "--api-only", action="store_true", help="no embedded worker: the API's own ceiling"
    )
    parser.add_argument("--rate-limit", type=int, help="measure the rate limiter at this limit")
    parser.add_argument("--limited-duration", type=float, default=60.0)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="clarion-bench-"))
    pg_name = f"clarion_bench_{os.getpid()}"
    if args.postgres:
        with psycopg.connect(args.postgres, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{pg_name}"')
        base = args.postgres.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        url = f"{base}/{pg_name}"
    else:
        url = f"sqlite:///{work / 'clarion.db'}"
    upgrade(url)
    db = Database(url)
    # Throughput runs lift the project's rate limit out of the way; --rate-limit measures it.
    project_id, key, campaign_id = seed(db, args.rate_limit or 1_000_000)
    port = free_port()
    env = dict(os.environ, CLARION_DATABASE_URL=url, CLARION_VAR_DIR=str(work),
               CLARION_PORT=str(port), CLARION_DEMO="false", CLARION_LOG_LEVEL="warning",
               CLARION_EMBEDDED_WORKER=str(not args.api_only).lower())  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "clarion.cli", "serve"], env=env)
    try:
        wait_healthy(port, proc)
        headers = {"X-Clix-Project-ID": project_id, "X-Clix-API-Key": key,
                   "Content-Type": "application/json"}  # fmt: skip
        health = build_request("GET", "/api/v1/health", {})
        body = orjson.dumps({
            "audience": {"targets": [{"project_user_id": "store_staff-City3-1"}]},
            "properties": {"store_location": "City 3", "order_id": "ORD-1",
                           "customer_name": "Jamie", "item_count": 3, "pickup_time": "2:30 PM"},
        })  # fmt: skip
        trig = build_request("POST", f"/api/v1/campaigns/{campaign_id}:trigger", headers, body)
        if args.rate_limit:
            limited(port, trig, args.rate_limit, args.limited_duration)
            return
        c, d = args.concurrency, args.duration
        engine = "PostgreSQL" if args.postgres else "SQLite"
        worker = "no worker" if args.api_only else "embedded worker"
        print(f"Clarion trigger benchmark: {engine}, {worker}, {c} clients, {d:.0f} s each")
        h = asyncio.run(run_load("127.0.0.1", port, health, concurrency=c, duration=d))
        t = asyncio.run(run_load("127.0.0.1", port, trig, concurrency=c, duration=d))
        if set(t.statuses) != {200}:
            raise SystemExit(f"trigger answers were not all 200: {t.statuses}")
        if args.api_only:
            print_rates(h, t)
            return
        drained = wait_drained(db)
        print_rates(h, t)
        print(f"worker backlog after the trigger run drained in {drained:.1f} s "
              f"({len(t.latencies)} measured triggers, plus warm-up)")  # fmt: skip

        # Trigger -> sent, one trigger at a time on an idle system.
        accepted: dict[str, float] = {}
        for _ in range(args.samples):
            status, payload = asyncio.run(request_once("127.0.0.1", port, trig))
            done = time.time()
            assert status == 200, payload
            accepted[orjson.loads(payload)["trigger_id"]] = done
            time.sleep(0.02)
        wait_drained(db)
        with db.read() as session:
            rows = session.execute(
                select(Message.trigger_id, Message.sent_at).where(
                    Message.trigger_id.in_(list(accepted)), Message.status == "sent"
                )
            ).all()
            failed = session.scalars(
                select(Trigger.id).where(Trigger.status != "completed",
                                         Trigger.id.in_(list(accepted)))
            ).all()  # fmt: skip
        lags = sorted(r.sent_at.timestamp() - accepted[r.trigger_id] for r in rows)
        if len(lags) != len(accepted) or failed:
            raise SystemExit(f"{len(accepted) - len(lags)} triggers were not sent")
        p50, p99 = lags[len(lags) // 2], lags[min(len(lags) - 1, int(0.99 * len(lags)))]
        print(f"200 -> sent (single target, {len(lags)} sequential triggers): "
              f"p50 {fmt_ms(p50).strip()}, p99 {fmt_ms(p99).strip()}")  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(15)
        db.dispose()
        shutil.rmtree(work, ignore_errors=True)
        if args.postgres:
            with psycopg.connect(args.postgres, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
