"""SQLite's write-ahead log checkpointed on a thread of its own (storage.checkpoint): the
server's commits never copy the log into the database file, a thread beside them does."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from sqlalchemy import text

from clarion.storage.db import Database


def _fill(db: Database, rows: int) -> None:
    with db.write() as session:
        session.execute(text("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)"))
    for _ in range(0, rows, 1000):
        with db.write() as session:
            session.execute(
                text("INSERT INTO t (v) VALUES (:v)"), [{"v": "x" * 200} for _ in range(1000)]
            )


def _autocheckpoint(db: Database) -> int:
    with db.read() as session:
        return int(session.execute(text("PRAGMA wal_autocheckpoint")).scalar_one())


def _wal_frames(path: Path) -> tuple[int, int]:
    """(frames in the log, frames of it already copied into the database file)."""
    conn = sqlite3.connect(path)
    try:
        # A checkpoint that may not wait for anyone (and there is no one): it only reports.
        _, log, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(log), int(done)
    finally:
        conn.close()


def test_commits_leave_checkpoints_to_the_thread(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    db = Database(f"sqlite:///{path}", background_checkpoints=True)
    assert db.checkpointer is not None
    assert _autocheckpoint(db) == 0  # no commit checkpoints
    _fill(db, 60_000)  # some 1,600 8 KiB pages: past the 1,000 at which commits checkpoint
    deadline = time.monotonic() + 10
    while db.checkpointer.runs == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert db.checkpointer.runs > 0
    db.dispose()  # a last checkpoint, and the thread ends
    assert db.checkpointer._thread is not None and not db.checkpointer._thread.is_alive()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (60_000,)


def test_the_thread_copies_the_log_beside_the_writers(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    db = Database(f"sqlite:///{path}", background_checkpoints=True)
    _fill(db, 60_000)
    assert db.checkpointer is not None
    runs = db.checkpointer.runs
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the thread copies everything the writes added
        log, done = _wal_frames(path)
        if db.checkpointer.runs > runs and log == done:
            break
        time.sleep(0.05)
    log, done = _wal_frames(path)
    assert log > 1000 and done == log, (log, done)
    db.dispose()


def test_other_processes_keep_sqlites_own_checkpoints(tmp_path: Path) -> None:
    """A CLI command (an import) is short and checkpoints as SQLite does by default."""
    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    assert db.checkpointer is None
    assert _autocheckpoint(db) == 1000
    db.dispose()
