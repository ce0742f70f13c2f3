"""Importing a file (``clarion users import``), on every core when the file is large.

One process cannot prepare rows (parse, check, type each property: Python) and write them
(SQLite, or the PostgreSQL driver, plus the Python around each statement) at the same time:
its threads share one GIL, and on two cores the importer's reader thread and writer thread
slowed each other down. So a large file is split among worker processes by chunks of
``batch_size`` records: chunk c belongs to worker c mod n. Every worker reads the whole file
but parses only its own chunks; it prepares its next chunk while the others write, and
writes it when its turn comes. Chunks are written one at a time in file order, so a user
named twice ends as the later row says, exactly as in one process, and every write finds the
users and devices that the chunks before it stored.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Condition
from pathlib import Path
from typing import Any

from clarion.storage.db import Database
from clarion.storage.models import utcnow
from clarion.users import importer
from clarion.users.importer import MAX_KEPT_REJECTS, Format, Report, Row

PARALLEL_MIN = 20_000  # records; below this, starting processes costs more than it saves
MAX_WORKERS = 4  # writes are one at a time: more workers than that only prepare ahead


class WorkerFailed(RuntimeError):
    """An import worker process failed; the message carries its traceback."""


@dataclass(frozen=True, slots=True)
class _Job:
    url: str
    project_id: str
    path: Path
    fmt: Format | None
    batch_size: int
    workers: int
    now: datetime


def default_workers(db: Database, records: int) -> int:
    """One process for small files and in-memory databases, else one worker per core."""
    if records < PARALLEL_MIN or ":memory:" in db.url or "mode=memory" in db.url:
        return 1
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1))


def import_file(
    db: Database,
    project_id: str,
    path: Path,
    fmt: Format | None = None,
    *,
    batch_size: int = 2000,
    progress: Callable[[int], None] = lambda n: None,
    workers: int | None = None,
    records: int | None = None,
) -> Report:
    """Import the users in ``path`` (JSONL or CSV, see importer). ``progress`` is called with
    the number of rows each write stored; ``workers`` defaults to default_workers;
    ``records``: the file's line count, if the caller has it (importer.count_rows).
    The workers are spawned (started afresh, not forked), so a script that calls this must
    start its work under ``if __name__ == "__main__":``, as the CLI and benches do."""
    records = importer.count_rows(path) if records is None else records
    workers = default_workers(db, records) if workers is None else workers
    if workers <= 1:
        rows = importer.read_file(path, fmt)
        return importer.import_rows(db, project_id, rows, batch_size, progress, records)
    report = Report()
    started = time.perf_counter()
    job = _Job(db.url, project_id, path, fmt, batch_size, workers, utcnow())
    with importer.bulk_load(db, records, report):
        parts = _run(job, progress)
    for part in parts:
        report.rows += part.rows
        report.users_created += part.users_created
        report.users_updated += part.users_updated
        report.devices += part.devices
        report.rejected_total += part.rejected_total
        report.rejected += part.rejected
    report.rejected = sorted(report.rejected)[:MAX_KEPT_REJECTS]
    report.seconds = time.perf_counter() - started
    return report


def _run(job: _Job, progress: Callable[[int], None]) -> list[Report]:
    """Start the workers, relay their progress, and collect their reports. When one fails,
    the others are told to stop at their next turn, and WorkerFailed is raised."""
    ctx = multiprocessing.get_context("spawn")  # no copy of this process's threads and pools
    turn = ctx.Value("q", 0, lock=False)  # the next chunk to write; guarded by ``cond``
    failed = ctx.Value("b", 0, lock=False)
    cond = ctx.Condition()
    out: Any = ctx.Queue()
    processes = [
        ctx.Process(target=_work, args=(job, share, turn, failed, cond, out), daemon=True)
        for share in range(job.workers)
    ]
    for process in processes:
        process.start()
    reports: dict[int, Report] = {}
    errors: dict[int, str] = {}
    try:
        while len(reports) + len(errors) < job.workers:
            try:
                kind, share, payload = out.get(timeout=0.5)
            except queue.Empty:
                for share, process in enumerate(processes):  # died without a word?
                    if share not in reports and share not in errors and process.exitcode:
                        errors[share] = (f"import worker {share} ended with exit code "
                                         f"{process.exitcode}")  # fmt: skip
                        _stop(failed, cond)
                continue
            if kind == "progress":
                progress(payload)
            elif kind == "done":
                reports[share] = payload
            else:
                errors[share] = payload
                _stop(failed, cond)
    finally:
        if errors or len(reports) < job.workers:
            _stop(failed, cond)
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    if errors:
        raise WorkerFailed(errors[min(errors)])
    return [reports[share] for share in range(job.workers)]


def _stop(failed: Synchronized[int], cond: Condition) -> None:
    with cond:
        failed.value = 1
        cond.notify_all()


class _Stopped(Exception):
    pass


def _work(
    job: _Job,
    share: int,
    turn: Synchronized[int],
    failed: Synchronized[int],
    cond: Condition,
    out: Any,
) -> None:
    """One worker: prepare each of its chunks, then write it in its turn."""
    db = Database(job.url)
    try:
        fixed = importer.stamp(db, job.project_id, job.now)
        statistics = importer.Statistics(db)
        report = Report()
        for chunk, items in _chunks(job, share):
            batches = list(importer.batches(items, job.batch_size, report, fixed))
            with cond:
                while turn.value != chunk:
                    if failed.value:
                        raise _Stopped
                    cond.wait(0.5)
            for batch in batches:
                importer.write_batch(db, fixed, batch, report)
            statistics.written((chunk + 1) * job.batch_size)
            with cond:
                turn.value = chunk + 1
                cond.notify_all()
            out.put(("progress", share, sum(len(batch.rows) for batch in batches)))
        out.put(("done", share, report))
    except _Stopped:
        out.put(("done", share, Report()))
    except BaseException:
        out.put(("failed", share, f"import worker {share} failed:\n{traceback.format_exc()}"))
    finally:
        db.dispose()


def _chunks(job: _Job, share: int) -> Iterator[tuple[int, list[Row | tuple[int, str]]]]:
    """This worker's chunks, in order, each with its records parsed: (chunk number, rows)."""
    source = importer.Source(job.path, job.fmt)
    current = -1
    items: list[Row | tuple[int, str]] = []
    for index, (number, raw) in enumerate(source):
        chunk = index // job.batch_size
        if chunk % job.workers != share:
            continue
        if chunk != current:
            if items:
                yield current, items
            current, items = chunk, []
        items.append(source.parse(number, raw))
    if items:
        yield current, items
