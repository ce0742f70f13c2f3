"""SQLite write-ahead-log checkpoints on a thread of their own.

By default SQLite checkpoints inside the commit that takes the log past 1,000 pages: that
writer copies the log into the database file and syncs it while it holds the write lock,
and every other writer waits. A million-recipient broadcast spent a sixth of its time in
such commits. Here the server's connections turn automatic checkpoints off and this thread
runs a PASSIVE checkpoint shortly after writes: it copies what no reader still needs,
beside the writers (a passive checkpoint never takes the write lock), and the next writer
starts the log over once it is all copied.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger(__name__)

# Seconds between checkpoints while writes go on: each copies what the writes since the
# last one added (pages that several commits changed are copied once).
INTERVAL = 0.25


class Checkpointer:
    """Checkpoints the database at ``path`` after writes; ``wrote()`` says there were some
    (Database.write says so after each commit: every write of a process that uses this goes
    through it). The thread starts with the first write and ends with ``close()``, after a
    last checkpoint."""

    def __init__(self, path: str, interval: float = INTERVAL) -> None:
        self.path = path
        self.interval = interval
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()
        self.runs = 0  # checkpoints made, for tests

    def wrote(self) -> None:
        self._dirty.set()
        if self._thread is None:
            with self._start:
                if self._thread is None and not self._stop.is_set():
                    self._thread = threading.Thread(
                        target=self._loop, name="clarion-checkpoint", daemon=True
                    )
                    self._thread.start()

    def close(self) -> None:
        with self._start:
            self._stop.set()
            thread = self._thread
        self._dirty.set()
        if thread is not None:
            thread.join()

    def _loop(self) -> None:
        conn = sqlite3.connect(self.path)
        try:
            while True:
                self._dirty.wait()
                self._dirty.clear()
                self.checkpoint(conn)
                if self._stop.is_set():
                    return
                self._stop.wait(self.interval)  # let writes gather: one checkpoint for all
        finally:
            conn.close()

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self.runs += 1
        except sqlite3.Error as exc:  # a busy or vanished file: the next write tries again
            log.warning("SQLite checkpoint failed: %s", exc)
