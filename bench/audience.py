"""Audience engine at scale: import rate, rule count time, stream rate, peak RSS.

Generates N users (default 1,000,000) with about 10 properties each and 1 or 2 devices
(1.5 on average) as JSONL under var/bench/ (once), imports them through the same code as
`clarion users import` into a fresh database, then times a three-attribute rule with a
`{{ trigger.* }}` value: counting the matches, and streaming every match the way the
pipeline does (in chunks). Each measurement runs in a fresh process, so peak RSS is that of
the stream alone. A broad rule (nearly everyone) is streamed too, for the rate at scale.

    python bench/audience.py [--users 1000000] [--postgres [ADMIN_URL]] [--keep] [--no-sqlite]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from clarion.audience import compiler
from clarion.audience.rules import Audience
from clarion.auth import service as auth
from clarion.storage.db import Database
from clarion.storage.migrate import upgrade
from clarion.users import file_import, importer

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "var" / "bench"
CITIES = [f"City {i}" for i in range(20)]
TIERS = ["free", "silver", "gold", "platinum"]
LANGUAGES = ["en", "ko", "ja", "es", "fr", "de", "pt", "zh", "it", "nl"]
VERSIONS = ["2.9.0", "3.0.0", "3.1.2", "3.2.0", "4.0.1"]
# The measured rule, the seed's case: one store's people (the store comes with the
# trigger), paying tiers, a recent app. 1 store in 200.
RULE = {
    "conditions": [
        {"attribute": "favorite_store", "operator": "equals", "value": "{{ trigger.store }}"},
        {"attribute": "tier", "operator": "in", "value": ["gold", "platinum"]},
        {"attribute": "app_version", "operator": ">=", "value": "3.1.0"},
    ]
}
# The same shape over a whole city: 1 in 20.
CITY = {
    "conditions": [
        {"attribute": "city", "operator": "equals", "value": "{{ trigger.city }}"},
        {"attribute": "tier", "operator": "in", "value": ["gold", "platinum"]},
        {"attribute": "app_version", "operator": ">=", "value": "3.1.0"},
    ]
}
BROAD = {
    "conditions": [
        {"attribute": "age", "operator": ">=", "value": "{{ trigger.min_age }}"},
        {"attribute": "tier", "operator": "exists"},
        {"attribute": "app_version", "operator": ">=", "value": "1.0"},
    ]
}
TRIGGER = {"store": "store-42", "city": "City 7", "min_age": 0}


def generate(path: Path, users: int) -> None:
    rng = random.Random(42)
    base = datetime(2024, 1, 1, tzinfo=UTC)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for i in range(users):
            signup = base + timedelta(seconds=rng.randrange(0, 3 * 365 * 86400))
            props = {
                "city": CITIES[i % len(CITIES)],
                "tier": rng.choice(TIERS),
                "age": rng.randrange(18, 80),
                "lifetime_value": round(rng.random() * 500, 2),
                "vip": rng.random() < 0.1,
                "signup_at": signup.isoformat().replace("+00:00", "Z"),
                "language": rng.choice(LANGUAGES),
                "email": f"user{i}@example.com",
                "points": rng.randrange(0, 10000),
                "favorite_store": f"store-{rng.randrange(200)}",
            }
            devices = [
                {
                    "id": f"dev-{i}-{d}",
                    "platform": "IOS" if (i + d) % 2 else "ANDROID",
                    "app_version": rng.choice(VERSIONS),
                    "push_token": f"tok-{i}-{d}",
                    "is_push_permission_granted": rng.random() < 0.9,
                    "locale_region": "US",
                    "timezone": "America/New_York",
                }
                for d in range(1 + (i % 2))
            ]
            row = {"project_user_id": f"user-{i}", "properties": props, "devices": devices}
            fh.write(json.dumps(row) + "\n")
    tmp.rename(path)


def peak_rss_kb() -> int:
    """This process's peak RSS (VmHWM starts afresh at exec, unlike ru_maxrss)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure(url: str, project_id: str, rule: dict[str, Any], chunk: int) -> dict[str, Any]:
    """Run in a fresh process: count, then stream every match in chunks."""
    db = Database(url)
    audience = Audience.model_validate(rule)
    bound = audience.bind(TRIGGER)
    params = compiler.params(project_id, audience, bound, time.time())
    counts = []
    with db.read() as session:
        for _ in range(5):
            started = time.perf_counter()
            (n,) = session.execute(compiler.count(audience, False), params).one()
            counts.append(time.perf_counter() - started)
    started = time.perf_counter()
    streamed = 0
    with db.read() as session:
        result = session.execute(
            compiler.recipients(audience, False), params, execution_options={"yield_per": chunk}
        )
        for part in result.partitions(chunk):
            streamed += len(part)
    stream_s = time.perf_counter() - started
    floor_s = raw_stream(db, compiler.recipients(audience, False), params, chunk, streamed)
    db.dispose()
    rss_kb = peak_rss_kb()
    return {
        "floor_rate": streamed / floor_s if floor_s else 0.0,
        "matches": n,
        "count_ms_first": counts[0] * 1000,
        "count_ms_median": sorted(counts)[2] * 1000,
        "streamed": streamed,
        "stream_s": stream_s,
        "rate": streamed / stream_s if stream_s else 0.0,
        "peak_rss_mb": rss_kb / 1024,
    }


def raw_stream(db: Database, stmt: Any, params: dict[str, Any], chunk: int, expect: int) -> float:
    """The floor: the same SQL through the database driver alone (a server-side cursor on
    PostgreSQL), rows fetched in chunks and dropped. Returns the seconds it took."""
    with db.engine.connect() as conn:
        expanded = stmt.compile(dialect=conn.dialect).construct_expanded_state(params)
        driver = conn.connection.driver_connection
        assert driver is not None
        if db.is_sqlite:
            args: Any = expanded.positional_parameters
            cursor = driver.cursor()
        else:
            args = expanded.parameters
            cursor = driver.cursor(name="floor")  # type: ignore[call-arg]
        started = time.perf_counter()
        cursor.execute(expanded.statement, args)
        n = 0
        while rows := cursor.fetchmany(chunk):
            n += len(rows)
        elapsed = time.perf_counter() - started
        cursor.close()
        conn.rollback()
    assert n == expect, (n, expect)
    return elapsed


def run_measure(url: str, project_id: str, rule: dict[str, Any]) -> dict[str, Any]:
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import audience as b; "
        "print(json.dumps(b.measure(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), 500)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent), url, project_id,
         json.dumps(rule)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def import_into(url: str, data: Path) -> tuple[str, importer.Report]:
    upgrade(url)
    db = Database(url)
    with db.write() as session:
        project_id = auth.create_project(session, "bench-audience").id
    report = file_import.import_file(db, project_id, data, batch_size=5000)
    if db.is_sqlite:
        with db.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
    else:
        with db.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
    db.dispose()
    return project_id, report


def report(engine: str, users: int, rep: importer.Report, results: dict[str, Any]) -> None:
    print(f"\n== {engine}: {users:,} users ==")
    print(
        f"import: {rep.rows:,} users, {rep.devices:,} devices in {rep.seconds:.1f} s "
        f"= {rep.rate:,.0f} users/s (target >= 20,000)"
        + (
            f"; of which building the value indexes {rep.index_seconds:.1f} s"
            if rep.bulk_load
            else ""
        )
    )
    for name, r in results.items():
        print(f"{name}:")
        print(
            f"  {r['matches']:,} recipients; count {r['count_ms_first']:.0f} ms first, "
            f"{r['count_ms_median']:.0f} ms median of 5 (target <= 150)"
        )
        print(
            f"  stream {r['streamed']:,} in {r['stream_s']:.2f} s = {r['rate']:,.0f}/s "
            f"(target >= 500,000); peak RSS {r['peak_rss_mb']:.0f} MB (target <= 300)"
        )
        print(
            f"  floor (the same SQL through the driver alone): {r['floor_rate']:,.0f}/s; "
            f"stream/floor {r['rate'] / r['floor_rate']:.2f}"
            if r["floor_rate"]
            else "  floor: -"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument(
        "--postgres", nargs="?", const="postgresql://postgres@127.0.0.1:5432/postgres",
        default=None, help="also run on a fresh PostgreSQL database (admin URL)",
    )  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the SQLite database")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    args = parser.parse_args()
    data = CACHE / f"audience-{args.users}.jsonl"
    if not data.exists():
        started = time.perf_counter()
        generate(data, args.users)
        print(f"generated {data} in {time.perf_counter() - started:.1f} s")
    rules = {
        "store rule (favorite_store = trigger.store, tier in [gold, platinum], "
        "app_version >= 3.1.0)": RULE,
        "city rule (the same over a city, 1 in 20)": CITY,
        "broad rule (age >= trigger.min_age, tier exists, app_version >= 1.0)": BROAD,
    }

    if not args.no_sqlite:
        path = CACHE / f"audience-{args.users}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{path}"
        project_id, rep = import_into(url, data)
        results = {n: run_measure(url, project_id, r) for n, r in rules.items()}
        report("SQLite", args.users, rep, results)
        if not args.keep:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)

    if args.postgres:
        name = f"clarion_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.postgres, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        base = args.postgres.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        pg_url = f"{base}/{name}"
        try:
            project_id, rep = import_into(pg_url, data)
            results = {n: run_measure(pg_url, project_id, r) for n, r in rules.items()}
            report("PostgreSQL", args.users, rep, results)
        finally:
            with psycopg.connect(args.postgres, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
