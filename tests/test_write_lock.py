"""SQLite writers queue on a lock shared by every process using the file (storage.write_lock):
a writer waits for the one holding it and starts the moment it commits, without SQLite's busy
handler and its sleeps."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import text

from clarion.storage.db import Database
from clarion.storage.write_lock import WriteLock


def test_two_holders_of_the_file_take_turns(tmp_path: Path) -> None:
    """Two locks on one file (as two processes have) exclude each other: an flock belongs to
    an open file, not to a thread or a process."""
    path = str(tmp_path / "x.db")
    first, second = WriteLock(path), WriteLock(path)
    first.acquire()
    took = threading.Event()

    def take() -> None:
        second.acquire()
        took.set()
        second.release()

    waiter = threading.Thread(target=take)
    waiter.start()
    assert not took.wait(0.3)  # held by the first
    first.release()
    assert took.wait(5)
    waiter.join()
    first.close()
    second.close()


def test_a_writer_in_another_process_waits_on_the_lock_not_on_sqlite(tmp_path: Path) -> None:
    """The other process's busy timeout is 50 ms, and this one holds its write transaction
    for a second: had it waited in SQLite's busy handler, it would have failed with
    "database is locked". It waits on the lock, and writes after the commit."""
    url = f"sqlite:///{tmp_path / 'w.db'}"
    db = Database(url)
    with db.write() as session:
        session.execute(text("CREATE TABLE t (n INTEGER)"))
    child = (
        "import sys; from sqlalchemy import text; from clarion.storage.db import Database\n"
        "db = Database(sys.argv[1], lock_timeout=0.05)\n"
        "print('ready', flush=True); sys.stdin.readline()\n"
        "with db.write() as s: s.execute(text('INSERT INTO t VALUES (2)'))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", child, url], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    with db.write() as session:
        session.execute(text("INSERT INTO t VALUES (1)"))
        proc.stdin.write("go\n")
        proc.stdin.flush()
        time.sleep(1.0)  # the other process is waiting to write meanwhile
    assert proc.wait(30) == 0
    with db.read() as session:
        assert list(session.scalars(text("SELECT n FROM t ORDER BY rowid"))) == [1, 2]
    db.dispose()
