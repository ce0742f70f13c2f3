"""SQLite's one writer at a time, queued instead of polled.

SQLite lets one connection write at a time; another that wants to write meets SQLITE_BUSY
and its busy handler sleeps and tries again, with sleeps of up to 100 ms: long tail latencies
and idle cores while a writer waits. So each process queues its writers on a lock of its own
(a thread lock) and, across processes sharing the file (`clarion serve` and its worker
processes, a CLI beside them), on an exclusive ``flock`` of a file next to the database:
the kernel wakes the next writer the moment the last one lets go.

The lock file is not the database file itself: SQLite's POSIX locks on that file would be
dropped when any other descriptor of it in the process is closed.
"""

from __future__ import annotations

import fcntl
import os
import threading


class WriteLock:
    def __init__(self, database_path: str | None) -> None:
        """``database_path``: the SQLite file; None (an in-memory database) for a lock of
        this process alone."""
        self._thread = threading.Lock()
        self._fd: int | None = None
        if database_path is not None:
            try:
                self._fd = os.open(f"{database_path}-writelock", os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:  # a read-only directory: this process's writers still queue
                self._fd = None

    def acquire(self) -> None:
        self._thread.acquire()
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            except BaseException:
                self._thread.release()
                raise

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._thread.release()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
