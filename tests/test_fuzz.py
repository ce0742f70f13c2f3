"""Fuzzing. Schemathesis generates requests for every operation of Clarion's own OpenAPI
document, valid and invalid, and every answer must be documented there (status, content
type, body schema) and never a 5xx. Hypothesis throws arbitrary JSON at the trigger call:
never a 5xx, and a refused call writes nothing.

The budget is per operation and mode (valid and invalid data): CLARION_FUZZ_EXAMPLES, 15 in
`make test`; a deeper run sets it higher (CLARION_FUZZ_EXAMPLES=200 pytest tests/test_fuzz.py).
"""

from __future__ import annotations

import json
import os
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import func, select

from clarion.storage.db import Database
from clarion.storage.models import Trigger
from tests.conftest import Server, make_project
from tests.helpers import PROPS, store_pickup

FUZZ_EXAMPLES = int(os.environ.get("CLARION_FUZZ_EXAMPLES", "15"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]  # fmt: skip


def test_every_operation_answers_as_documented(server_factory: Any, db: Database) -> None:
    server: Server = server_factory(rate_limit_per_second=1_000_000)
    project = make_project(db)
    store_pickup(server.client, project)
    document = server.app.openapi()
    document["paths"] = {p: v for p, v in document["paths"].items() if p.startswith("/api/v1/")}
    schema = schemathesis.openapi.from_dict(document)
    ran: dict[str, int] = {}
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an Err raises here, loudly
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failure = _fuzz(operation, mode, server.url, project.headers, ran)
            if failure:
                failures.append(failure)
    total = sum(ran.values())
    print(f"\nschemathesis: {total} cases over {len(ran)} operations, {len(failures)} failures")
    assert not failures, (
        "\n\n".join(failures[:10]) + "\n\nall: " + "\n".join(f.split(":", 1)[0] for f in failures)
    )
    operations = sum(len(item) for item in document["paths"].values())
    assert len(ran) == operations, sorted(ran)  # every operation was called
    assert total >= len(ran) * 2


def _fuzz(
    operation: Any, mode: GenerationMode, url: str, headers: dict[str, str], ran: dict[str, int]
) -> str | None:
    """Run one operation's examples in one mode; the first failure, described, or None."""
    label = operation.label

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = case.call(base_url=url, headers=headers)
        ran[label] = ran.get(label, 0) + 1
        case.validate_response(response, checks=CHECKS)

    try:
        run()
    except Unsatisfiable:  # nothing to negate: every string is a valid path id, no body
        return None
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # schemathesis reports failures as exception groups
        return f"{label} ({mode.value}): {str(exc)[:800]}"
    return None


SCALARS: st.SearchStrategy[Any] = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=20),
    st.floats(allow_nan=False, allow_infinity=False),
)  # fmt: skip
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
BODIES = (
    JSON
    | st.fixed_dictionaries({}, optional={"properties": JSON, "audience": JSON})
    | st.fixed_dictionaries(
        {
            "audience": st.fixed_dictionaries(
                {}, optional={"broadcast": JSON, "targets": st.lists(JSON, max_size=4)}
            )
        },
        optional={"properties": JSON},
    )
)


def test_the_trigger_call_survives_arbitrary_json(server: Server, db: Database) -> None:
    project = make_project(db)
    campaign_id = store_pickup(server.client, project)
    path = f"/api/v1/campaigns/{campaign_id}:trigger"

    def counts() -> int:  # triggers are written only by accepted calls (jobs come and go)
        with db.read() as session:
            return int(session.scalar(select(func.count()).select_from(Trigger)) or 0)

    @settings(max_examples=FUZZ_EXAMPLES * 10, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    # JSON text (lone surrogates escaped as json.dumps writes them), or any text at all.
    @given(body=BODIES.map(json.dumps) | st.text(max_size=40))
    def run(body: str) -> None:
        before = counts()
        headers = {**project.headers, "Content-Type": "application/json"}
        r = server.client.post(path, content=body.encode("utf-8", "surrogatepass"),
                               headers=headers)  # fmt: skip
        assert r.status_code < 500, r.text
        if r.status_code == 200:
            assert counts() == before + 1
        else:
            assert r.json()["error"]["code"] and counts() == before, (body, r.text)

    run()
    # Sanity: the endpoint is alive and accepting after the barrage.
    ok = server.client.post(path, json={"properties": PROPS}, headers=project.headers)
    assert ok.status_code == 200
