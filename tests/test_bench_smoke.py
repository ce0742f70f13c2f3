"""The benchmark runs end to end (tiny durations): `make bench` must not rot."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[1] / "bench" / "trigger.py"
RENDER = BENCH.with_name("render.py")
DISPATCH = BENCH.with_name("dispatch.py")


def test_trigger_bench_runs_and_prints_its_figures() -> None:
    run = subprocess.run(
        [sys.executable, str(BENCH), "--duration", "0.5", "--concurrency", "4", "--samples", "5"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    out = run.stdout
    assert "GET /health" in out and "POST :trigger" in out
    assert "trigger/health throughput ratio" in out
    assert "200 -> sent (single target, 5 sequential triggers)" in out


def test_render_bench_runs_and_prints_its_figures() -> None:
    run = subprocess.run(
        [sys.executable, str(RENDER), "--seconds", "0.05"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    for line in ("(a) trigger-only", "(b) user.* + default", "(c) (b) + if/else",
                 "whole messages", "personalised rendering:"):  # fmt: skip
        assert line in run.stdout


@pytest.mark.parametrize("fake", ["python", "node"])
def test_dispatch_bench_runs_and_loses_nothing(fake: str) -> None:
    if fake == "node" and shutil.which("node") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node is needed for the benchmark's fast fake FCM in CI")
        pytest.skip(
            "node is not installed here (CI requires it): the benchmark uses the Python fake"
        )
    run = subprocess.run(
        [sys.executable, str(DISPATCH), "--messages", "300", "--fake", fake],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert "clarion provider:" in run.stdout and "bare httpx loop:" in run.stdout
    assert "bare h2 loop:" in run.stdout
    assert "nothing lost: 300 answered sent, the fake counted 300 of 300" in run.stdout


def test_broadcast_bench_runs_and_prints_its_figures() -> None:
    run = subprocess.run(
        [sys.executable, str(BENCH.with_name("broadcast.py")), "--devices", "1000", "--fcm"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    for line in ("== SQLite, sink: 1,000 devices ==", "== SQLite, fake FCM: 1,000 devices ==",
                 "messages/s", "first message", "server peak RSS", "its worker processes: ",
                 "stages (thread-seconds, the server process's): resolve",
                 "stages (thread-seconds, a worker process's): resolve",
                 "floor (read recipients + insert final rows"):  # fmt: skip
        assert line in run.stdout, run.stdout
