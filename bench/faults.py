"""The fault test at full size: a 100,000-recipient broadcast and 200 single-target triggers
through 2 API processes and 3 workers (Procrastinate engine) on a private PostgreSQL, while
a random worker is SIGKILLed every few seconds, PostgreSQL restarts once and an API process
is killed mid-request. Prints the counts (tests/faults/ runs the same at 10,000 in CI).

    python bench/faults.py [--recipients 100000] [--kill-every 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.faults import harness


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--singles", type=int, default=200)
    parser.add_argument("--kill-every", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="clarion-faults-") as tmp:
        counts = harness.run(Path(tmp), args.recipients, args.singles, args.kill_every,
                             chunk=500, timeout=1800)  # fmt: skip
    print(counts.report())
    ok = counts.verdict
    print("verdict:", "nothing lost, duplicates within the sends in flight" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
