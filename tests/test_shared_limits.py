"""Rate limits shared by every API process (CLARION_RATE_LIMIT_BACKEND=redis or postgres):
two API servers on one database hold one project's limit together; with the default
(memory) each holds it alone."""

from __future__ import annotations

from typing import Any

import pytest

from clarion.storage.db import Database
from tests.conftest import Server, make_project
from tests.helpers import redis_or_skip

LIMIT = 5


def _accepted(servers: list[Server], headers: dict[str, str], calls: int) -> int:
    codes = [servers[i % 2].client.get("/api/v1/campaigns", headers=headers).status_code
             for i in range(calls)]  # fmt: skip
    assert set(codes) <= {200, 429}, codes
    return codes.count(200)


def _redis_or_skip() -> None:
    # This address's failures from earlier runs would count against it.
    redis_or_skip().delete("clarion:rate:a:127.0.0.1")


@pytest.mark.parametrize("backend", ["memory", "redis", "postgres"])
def test_two_api_processes_share_a_projects_limit(
    backend: str, server_factory: Any, db: Database
) -> None:
    if backend == "redis":
        _redis_or_skip()
    if backend == "postgres" and db.is_sqlite:
        with pytest.raises(ValueError, match="needs CLARION_DATABASE_URL to be PostgreSQL"):
            server_factory(rate_limit_backend="postgres")  # refused at start-up
        return
    settings = {"rate_limit_per_second": LIMIT, "rate_limit_backend": backend}
    servers = [server_factory(**settings), server_factory(**settings)]
    project = make_project(db)
    accepted = _accepted(servers, project.headers, 4 * LIMIT)
    if backend == "memory":
        assert accepted >= 2 * LIMIT  # each process: its own bucket
    else:
        # One bucket for both: the burst, plus what refills while the calls run.
        assert LIMIT <= accepted <= LIMIT + 2, accepted
        r = servers[0].client.get("/api/v1/campaigns", headers=project.headers)
        if r.status_code == 429:
            assert r.headers["x-ratelimit-remaining"] == "0" and int(r.headers["retry-after"]) >= 1
        # The failed-authentication limit is shared too.
        wrong = {**project.headers, "X-Clix-API-Key": "clx_sk_wrong"}
        failures = servers[0].settings.auth_failures_per_minute
        codes = [servers[i % 2].client.get("/api/v1/campaigns", headers=wrong).status_code
                 for i in range(failures + 2)]  # fmt: skip
        assert codes[:failures] == [401] * failures and codes[failures:] == [429, 429]
