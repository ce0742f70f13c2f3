"""Worker processes that `clarion serve` runs beside its embedded worker.

The embedded worker's threads share one GIL with the API, and a broadcast's chunks are
rendered and recorded in Python: one process keeps one core busy. So `clarion serve` also
starts `CLARION_WORKER_PROCESSES` worker processes (by default one per core beyond the first)
on the same database. They claim jobs from the same table as the embedded worker; on SQLite
their writes queue on the database's write lock with the server's (storage.write_lock).

They are the server's own: started after its embedded worker has resumed what the last
server left running, stopped (drained) when it stops, and killed by the kernel if it dies
(PR_SET_PDEATHSIG), so a restarted server on SQLite may still treat every running job as
left by a dead process.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys

log = logging.getLogger("clarion.runner")
PR_SET_PDEATHSIG = 1


def default_count() -> int:
    return max(0, (os.cpu_count() or 1) - 1)


class HelperProcesses:
    def __init__(self, count: int, threads: int, metrics_port: int | None = None) -> None:
        """``metrics_port``: process i serves its metrics on metrics_port + i (127.0.0.1)."""
        self.count = count
        self.threads = threads
        self.metrics_port = metrics_port
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        command = [sys.executable, "-m", "clarion.cli", "worker", "--concurrency",
                   str(self.threads), "--helper-of", str(os.getpid())]  # fmt: skip
        for i in range(self.count):
            port = (
                [] if self.metrics_port is None else ["--metrics-port", str(self.metrics_port + i)]
            )
            self.processes.append(subprocess.Popen([*command, *port], stdout=subprocess.DEVNULL))
        if self.processes:
            log.info("started %d worker process(es) beside the embedded worker", self.count)

    def stop(self, timeout: float = 30.0) -> None:
        """Drain them: each finishes the jobs it holds (up to ``timeout``), then exits."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes = []


def die_with(parent: int) -> bool:
    """In a helper: have the kernel kill this process when its parent dies. False when the
    parent has died already (or is not ``parent``)."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    return os.getppid() == parent
