"""The fault run: a broadcast and single-target triggers through 2 API processes and 3
workers on the Procrastinate engine, delivering to a local FCM (tests.fakes.fcm) that records
every send, while workers are SIGKILLed and restarted, PostgreSQL restarts once and an API
process is killed mid-request. `tests/faults/` runs it small in CI; `make bench-faults`
(bench/faults.py) runs it at 100,000 recipients.

PostgreSQL is a private instance (initdb in a temporary directory, its own port), so that
restarting it disturbs nothing else on the machine.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
from sqlalchemy import func, insert, select
from sqlalchemy.exc import OperationalError

from clarion.ids import uuid7
from clarion.messages.repository import being_sent
from clarion.storage.db import Database
from clarion.storage.migrate import upgrade
from clarion.storage.models import Device, Message, Trigger, User, utcnow
from tests.conftest import Project, free_port, make_project
from tests.fakes import fcm

API_PROCESSES = 2
WORKERS = 3


def _pg_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError("the fault run needs PostgreSQL's initdb and pg_ctl")
    return Path(initdb).parent


class PrivatePostgres:
    """A throw-away PostgreSQL server (trust authentication, no fsync) that can restart."""

    def __init__(self) -> None:
        # Its own directory under the system's temporary one: when run as root, the server
        # runs as the postgres user, who may not enter the caller's (pytest's are 0700).
        self.root = Path(tempfile.mkdtemp(prefix="clarion-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.bin = _pg_bin()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def _ctl(self, action: str, *extra: str) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c max_connections=300")  # fmt: skip
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-w",
                  "-o", options, action, *extra)  # fmt: skip

    def start(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8")  # fmt: skip
        self._ctl("start")

    def restart(self) -> None:
        self._ctl("restart", "-m", "fast")  # open connections are cut

    def stop(self) -> None:
        try:
            self._ctl("stop", "-m", "immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class Process:
    args: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0

    def start(self) -> None:
        if self.args[0] == "serve":
            self.port = free_port()
            self.env["CLARION_PORT"] = str(self.port)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "clarion.cli", *self.args], env=self.env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Counts:
    recipients: int
    singles: int
    accepted: int = 0  # triggers answered 200 (the broadcast and the single ones)
    completed: int = 0  # of those, completed
    messages: int = 0  # message rows of the accepted triggers
    sent: int = 0  # of those, sent (the others failed: see failed)
    failed: int = 0
    eligible: int = 0  # recipients they should reach: one message each
    lost: int = 0  # eligible recipients without a message row
    extra_rows: int = 0  # message rows beyond one per recipient
    sent_at_fake: int = 0  # requests the fake FCM accepted
    unique_at_fake: int = 0  # distinct message ids among them
    duplicates_at_fake: int = 0
    in_flight_at_kills: int = 0  # messages being sent when a worker was killed
    in_flight_at_restart: int = 0  # ... and when PostgreSQL restarted
    worker_kills: int = 0
    api_kills: int = 0
    api_answers_lost: int = 0  # single triggers whose request got no answer (then retried)
    postgres_restarts: int = 0
    seconds: float = 0.0
    events: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> bool:
        """Nothing lost: every trigger answered 200 completed, every eligible recipient has
        one message, sent and received by the fake; duplicates within what was in flight."""
        return (
            self.completed == self.accepted
            and self.lost == 0
            and self.extra_rows == 0
            and self.sent == self.eligible
            and self.unique_at_fake == self.eligible
            and self.duplicates_at_fake <= self.in_flight_at_kills + self.in_flight_at_restart
        )

    def report(self) -> str:
        rows = [
            ("triggers answered 200", self.accepted),
            ("  of which completed", self.completed),
            ("eligible recipients", self.eligible),
            ("message rows", self.messages),
            ("  sent", self.sent),
            ("  failed", self.failed),
            ("recipients lost", self.lost),
            ("rows beyond one per recipient", self.extra_rows),
            ("sends at the fake FCM", self.sent_at_fake),
            ("  distinct messages", self.unique_at_fake),
            ("  duplicate sends", self.duplicates_at_fake),
            ("in flight at the worker kills", self.in_flight_at_kills),
            ("in flight at the PostgreSQL restart", self.in_flight_at_restart),
            ("workers SIGKILLed", self.worker_kills),
            ("API processes SIGKILLed", self.api_kills),
            ("requests unanswered (retried)", self.api_answers_lost),
            ("PostgreSQL restarts", self.postgres_restarts),
        ]
        lines = [f"  {name:<38} {value:>9,}" for name, value in rows]
        return "\n".join([f"fault run: {self.recipients:,} recipients, {self.singles} single "
                          f"triggers, {self.seconds:.1f} s", *lines])  # fmt: skip


def seed(db: Database, project_id: str, n: int) -> None:
    """n users with one Android device each (bulk rows: the run is about delivery)."""
    now = utcnow()
    for start in range(0, n, 5000):
        users = [{"id": uuid7(), "project_id": project_id, "project_user_id": f"u{i}",
                  "properties": {"first_name": f"N{i}"}, "created_at": now, "updated_at": now}
                 for i in range(start, min(n, start + 5000))]  # fmt: skip
        devices = [{"project_id": project_id, "id": f"d{u['project_user_id']}",
                    "user_id": u["id"], "attributes": {}, "platform": "ANDROID",
                    "locale_region": "", "locale_language": "", "timezone": "",
                    "is_push_permission_granted": True, "push_token": f"tok-{i}",
                    "push_token_type": "FCM", "created_at": now, "updated_at": now}
                   for i, u in enumerate(users, start)]  # fmt: skip
        with db.write() as session:
            session.execute(insert(User), users)
            session.execute(insert(Device), devices)


def _sending(db: Database) -> int:
    with db.read() as session:
        return being_sent(session)


@contextmanager
def _fleet(
    pg: PrivatePostgres, var: Path, fake: fcm.FakeFcm, chunk: int
) -> Iterator[tuple[list[Process], list[Process]]]:
    env = dict(
        os.environ,
        CLARION_DATABASE_URL=pg.url,
        CLARION_VAR_DIR=str(var),  # shared: every process reads the same credentials key
        CLARION_DEMO="false",
        CLARION_TASK_ENGINE="procrastinate",
        CLARION_FCM_BASE_URL=fake.url,
        CLARION_CHUNK_SIZE=str(chunk),
        CLARION_JOB_LEASE_SECONDS="5",
        CLARION_POLL_INTERVAL_SECONDS="0.2",
        CLARION_RATE_LIMIT_PER_SECOND="100000",
    )
    apis = [Process(["serve", "--no-worker"], dict(env)) for _ in range(API_PROCESSES)]
    workers = [Process(["worker", "--concurrency", "2"], dict(env)) for _ in range(WORKERS)]
    try:
        for p in [*apis, *workers]:
            p.start()
        for api in apis:
            _wait_ready(api)
        yield apis, workers
    finally:
        for p in [*apis, *workers]:
            p.stop()


def _wait_ready(api: Process, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{api.url}/api/v1/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the API process on {api.url} did not start")


def run(root: Path, recipients: int, singles: int = 200, kill_every: float = 2.0,
        chunk: int = 500, timeout: float = 600) -> Counts:  # fmt: skip
    """The whole fault run; returns its counts (the caller asserts or prints them)."""
    counts = Counts(recipients, singles)
    pg = PrivatePostgres()
    pg.start()
    try:
        with fcm.serve() as fake:
            fake.keep_messages = True
            _run(pg, root / "var", fake, counts, kill_every, chunk, timeout)
    finally:
        pg.stop()
    return counts


def _run(pg: PrivatePostgres, var: Path, fake: fcm.FakeFcm, counts: Counts,
         kill_every: float, chunk: int, timeout: float) -> None:  # fmt: skip
    upgrade(pg.url)
    db = Database(pg.url)
    project = make_project(db)
    seed(db, project.id, counts.recipients)
    rng = random.Random(7)
    started = time.monotonic()
    with _fleet(pg, var, fake, chunk) as (apis, workers):
        client = httpx.Client(timeout=10)
        r = client.put(f"{apis[0].url}/api/v1/providers/fcm", headers=project.headers,
                       json={"service_account": fake.service_account()})  # fmt: skip
        r.raise_for_status()
        spec = {"name": "all", "status": "active",
                "message": {"title": "Hi {{ user.first_name }}"}}  # fmt: skip
        r = client.post(f"{apis[0].url}/api/v1/campaigns", json=spec, headers=project.headers)
        r.raise_for_status()
        campaign = r.json()["id"]
        r = client.post(f"{apis[0].url}/api/v1/campaigns/{campaign}:trigger",
                        headers=project.headers)  # fmt: skip
        r.raise_for_status()
        accepted: dict[str, int] = {r.json()["trigger_id"]: counts.recipients}
        done = threading.Event()
        requesting = threading.Lock()  # held by each single-target request
        singles = threading.Thread(
            target=_singles,
            args=(apis, project, campaign, counts, accepted, done, rng, requesting),
        )
        singles.start()
        try:
            _chaos(db, pg, apis, workers, counts, kill_every, done, rng,
                   project, campaign, accepted, requesting)  # fmt: skip
        finally:
            done.set()
            singles.join(120)
        _wait_completed(db, list(accepted), started + timeout)
        counts.seconds = time.monotonic() - started
        _tally(db, fake, accepted, counts)
        client.close()
    db.dispose()


def _singles(
    apis: list[Process],
    project: Project,
    campaign: str,
    counts: Counts,
    accepted: dict[str, int],
    done: threading.Event,
    rng: random.Random,
    requesting: threading.Lock,
) -> None:
    """Single-target triggers, spread over the run and over both API processes. A request
    that gets no answer (its API process was killed) is sent again to the other process with
    the same Idempotency-Key, so that it is accepted exactly once; 503 (PostgreSQL
    restarting) and 409 (the key's first request still in flight, or claimed by a process
    that died: taken over after a minute) are retried after their Retry-After. Each request
    holds ``requesting``, so that the chaos thread can pick its moment."""
    with httpx.Client(timeout=10) as client:
        for i in range(counts.singles):
            target = {"project_user_id": f"u{rng.randrange(counts.recipients)}"}
            body = {"audience": {"targets": [target]}}
            headers = {**project.headers, "Idempotency-Key": f"single-{i}"}
            deadline = time.monotonic() + 180
            attempt = 0
            while time.monotonic() < deadline:
                api = apis[(i + attempt) % len(apis)]
                attempt += 1
                try:
                    with requesting:
                        r = client.post(f"{api.url}/api/v1/campaigns/{campaign}:trigger",
                                        json=body, headers=headers)  # fmt: skip
                except httpx.HTTPError:
                    counts.api_answers_lost += 1
                    time.sleep(0.2)
                    continue
                if r.status_code == 200:
                    accepted[r.json()["trigger_id"]] = 1
                    break
                time.sleep(min(5.0, float(r.headers.get("retry-after", 0.2))))
            time.sleep(0.02 if not done.is_set() else 0)


def _chaos(db: Database, pg: PrivatePostgres, apis: list[Process], workers: list[Process],
           counts: Counts, kill_every: float, done: threading.Event, rng: random.Random,
           project: Project, campaign: str, accepted: dict[str, int],
           requesting: threading.Lock) -> None:  # fmt: skip
    """Until the broadcast is delivered, SIGKILL a random worker and start it again: every
    ``kill_every`` seconds (about), and also each time another sixth of the broadcast has
    been sent, so that a fast run still sees several kills mid-send. A third of the way
    through, another thread kills an API process mid-request and restarts PostgreSQL, once
    each, while the worker kills go on."""
    marks = [counts.recipients * k // 6 for k in range(1, 6)]
    next_kill = time.monotonic() + kill_every * rng.uniform(0.5, 1.5)
    others: threading.Thread | None = None
    try:
        while True:
            time.sleep(0.1)
            try:
                with db.read() as session:
                    by_status = dict(session.execute(select(Message.status, func.count())
                                                     .group_by(Message.status)).all())  # fmt: skip
                in_flight = _sending(db)
            except OperationalError:  # PostgreSQL is restarting
                db.engine.dispose()
                continue
            written = sum(by_status.values())
            pending = by_status.get("queued", 0) + by_status.get("sending", 0)
            if written >= counts.recipients and pending == 0:
                return
            if others is None and written >= counts.recipients // 3:
                faults = (db, pg, apis, counts, project, campaign, accepted, requesting)
                others = threading.Thread(target=_api_and_database_faults, args=faults)
                others.start()
            passed = bool(marks) and by_status.get("sent", 0) >= marks[0]
            if time.monotonic() < next_kill and not passed:
                continue
            if passed:
                marks.pop(0)  # one kill per mark: several passed at once take several rounds
            next_kill = time.monotonic() + kill_every * rng.uniform(0.5, 1.5)
            victim = rng.choice(workers)
            victim.kill()
            counts.in_flight_at_kills += in_flight
            counts.worker_kills += 1
            victim.start()
    finally:
        if others is not None:
            others.join(120)


def _api_and_database_faults(
    db: Database,
    pg: PrivatePostgres,
    apis: list[Process],
    counts: Counts,
    project: Project,
    campaign: str,
    accepted: dict[str, int],
    requesting: threading.Lock,
) -> None:
    with requesting:  # between two single-target requests: ours is the one cut off
        _kill_mid_request(apis[1], apis[0], project, campaign, accepted, counts)
    counts.in_flight_at_restart = _sending(db)
    pg.restart()
    counts.postgres_restarts += 1


def _kill_mid_request(api: Process, other: Process, project: Project, campaign: str,
                      accepted: dict[str, int], counts: Counts) -> None:  # fmt: skip
    """Kill an API process in the middle of a trigger request (its headers and half its
    body sent), then send the request again to the other process with the same
    Idempotency-Key, as a client does when its connection drops: accepted exactly once."""
    path = f"/api/v1/campaigns/{campaign}:trigger"
    body = orjson.dumps({"audience": {"targets": [{"project_user_id": "u0"}]}})
    headers = {**project.headers, "Idempotency-Key": "killed-mid-request"}
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with socket.create_connection(("127.0.0.1", api.port), timeout=10) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}Content-Type: "
                     f"application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                     + body[: len(body) // 2])  # fmt: skip
        time.sleep(0.2)  # the server is reading the request
        api.kill()
        try:
            answer = sock.recv(1)
        except OSError:
            answer = b""
    assert answer == b"", "a killed process cannot answer"
    counts.api_kills += 1
    counts.api_answers_lost += 1
    r = httpx.post(f"{other.url}{path}", content=body, timeout=10,
                   headers={**headers, "Content-Type": "application/json"})  # fmt: skip
    r.raise_for_status()
    accepted[r.json()["trigger_id"]] = 1
    api.start()
    _wait_ready(api)


def _wait_completed(db: Database, trigger_ids: list[str], deadline: float) -> None:
    while time.monotonic() < deadline:
        with db.read() as session:
            open_ = session.scalar(select(func.count()).select_from(Trigger).where(
                Trigger.id.in_(trigger_ids), Trigger.status != "completed"))  # fmt: skip
        if not open_:
            return
        time.sleep(0.5)


def _tally(db: Database, fake: fcm.FakeFcm, accepted: dict[str, int], counts: Counts) -> None:
    ids = list(accepted)
    with db.read() as session:
        counts.accepted = len(ids)
        counts.completed = int(session.scalar(select(func.count()).select_from(Trigger).where(
            Trigger.id.in_(ids), Trigger.status == "completed")) or 0)  # fmt: skip
        per_trigger = dict(session.execute(
            select(Message.trigger_id, func.count(func.distinct(Message.device_id)))
            .where(Message.trigger_id.in_(ids)).group_by(Message.trigger_id)).all())  # fmt: skip
        statuses = dict(session.execute(
            select(Message.status, func.count()).where(Message.trigger_id.in_(ids))
            .group_by(Message.status)).all())  # fmt: skip
    counts.messages = sum(statuses.values())
    counts.sent, counts.failed = statuses.get("sent", 0), statuses.get("failed", 0)
    counts.eligible = sum(accepted.values())
    reached = sum(min(per_trigger.get(t, 0), n) for t, n in accepted.items())
    counts.lost = counts.eligible - reached
    counts.extra_rows = counts.messages - reached
    sent = [orjson.loads(m["data"]["clix"])["message_id"] for m in fake.messages]
    counts.sent_at_fake = len(sent)
    counts.unique_at_fake = len(set(sent))
    counts.duplicates_at_fake = counts.sent_at_fake - counts.unique_at_fake
