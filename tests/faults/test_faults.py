"""The fault test, reduced for CI: 10,000 recipients and 200 single-target triggers through
2 API processes and 3 workers while workers are SIGKILLed every second or two, PostgreSQL
restarts and an API process dies mid-request (tests/faults/harness.py; the full size is
`make bench-faults`)."""

from __future__ import annotations

from pathlib import Path

from tests.faults import harness


def test_nothing_accepted_is_lost_under_kills_and_a_database_restart(tmp_path: Path) -> None:
    counts = harness.run(tmp_path, recipients=10_000, singles=200, kill_every=1.5, chunk=250)
    print(counts.report())
    assert counts.worker_kills >= 3 and counts.api_kills == 1 and counts.postgres_restarts == 1
    # The broadcast, every single trigger and the one cut off mid-request, each exactly once.
    assert counts.accepted == 202
    assert counts.completed == counts.accepted
    assert counts.eligible == 10_201 and counts.lost == 0 and counts.extra_rows == 0
    assert counts.messages == counts.sent == counts.eligible  # one each, and it was sent
    assert counts.unique_at_fake == counts.eligible  # every one of them reached the fake
    assert counts.duplicates_at_fake <= counts.in_flight_at_kills + counts.in_flight_at_restart
    assert counts.verdict
