"""Liveness, readiness and the Prometheus metrics. Liveness says the process answers;
readiness says it can do its work now: the database answers, so do the task engine's tables,
and so does the rate-limit store when it is shared. A load balancer sends traffic to ready
nodes only."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import FastAPI, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from clarion import metrics
from clarion.web import JSONResponse, state

READY_TIMEOUT = 2.0  # seconds per check


class Ready(BaseModel):
    status: Literal["ready", "unavailable"]
    checks: dict[str, str] = Field(description="Each part: ok, or why it is not.")


def install(app: FastAPI) -> None:
    @app.get("/api/v1/health", tags=["health"], summary="Liveness")
    async def health() -> dict[str, str]:
        return {"msg": "ok"}

    unavailable: dict[int | str, dict[str, Any]] = {
        503: {"model": Ready, "description": "A part is unavailable."}
    }

    @app.get("/api/v1/health/ready", tags=["health"], response_model=Ready,
             summary="Readiness: the database, the task engine (and a shared rate-limit store) "
             "answer",
             responses=unavailable)  # fmt: skip
    async def ready(request: Request) -> JSONResponse:
        app_state = state(request)
        checks = {
            "database": await _check(run_in_threadpool(_ping, app_state.db)),
            "engine": await _check(run_in_threadpool(_engine, app_state)),
            "rate_limits": await _check(app_state.buckets.peek("ready", 1.0)),
        }
        ok = all(v == "ok" for v in checks.values())
        body = Ready(status="ready" if ok else "unavailable", checks=checks)
        return JSONResponse(body.model_dump(), 200 if ok else 503)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        # The queue gauge reads the database: off the event loop.
        return Response(await run_in_threadpool(metrics.exposition),
                        media_type=metrics.CONTENT_TYPE)  # fmt: skip


def _ping(db: Any) -> None:
    with db.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _engine(app_state: Any) -> None:
    with app_state.db.read() as session:
        app_state.intake.engine.check(session)


async def _check(work: Any) -> str:
    try:
        await asyncio.wait_for(work, READY_TIMEOUT)
    except TimeoutError:
        return f"unavailable: no answer within {READY_TIMEOUT:g} s"
    except Exception as exc:  # the reason, without details that could hold secrets
        return f"unavailable: {type(exc).__name__}"
    return "ok"
