"""POST /campaigns/{id}:trigger (Clix), GET /triggers/{id} and its message log (Clarion)."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Annotated, Any, Literal, cast

from fastapi import Query, Request, Response
from starlette.concurrency import run_in_threadpool

from clarion import idempotency
from clarion.auth.service import Principal
from clarion.campaigns.service import load_version
from clarion.errors import InvalidRequest
from clarion.messages import repository as messages_repo
from clarion.messages.schemas import MessageList, MessageOut
from clarion.storage.models import utcnow
from clarion.triggers import amplification, dry_run, explain, progress, service
from clarion.triggers.body import parse_trigger
from clarion.triggers.dry_run_schemas import DryRunOut
from clarion.triggers.schemas import (
    Counts,
    ExplainOut,
    ExplainStep,
    Target,
    TriggerAccepted,
    TriggerBody,
    TriggerOut,
)
from clarion.web import FollowKey, JSONResponse, TriggerKey, api_router, principal_from, state

router = api_router("triggers")
# The endpoints read the raw body themselves (so that refusals name JSON paths); the API
# document still describes it.
TRIGGER_BODY_DOC = {
    "requestBody": {
        "required": False,
        "content": {"application/json": {"schema": TriggerBody.model_json_schema()}},
    }
}


@router.post(
    "/campaigns/{campaign_id}:trigger",
    response_model=TriggerAccepted,
    summary="Trigger an API-triggered campaign (Clix-compatible)",
    openapi_extra=TRIGGER_BODY_DOC,
)
async def trigger_campaign(campaign_id: str, request: Request) -> Response:
    """Accept a trigger: ``audience.broadcast``, ``audience.targets`` (users or devices) or
    neither (the campaign's own audience), and ``properties``, each of which is
    ``trigger.<key>`` in the campaign's dynamic audience filters (rules whose value is
    ``{{ trigger.key }}``) and in its templates. The 200 comes only once the trigger and its
    first job are committed; delivery is asynchronous (see GET /triggers/{id}). With an
    ``Idempotency-Key`` header a retry gets the first answer, byte for byte."""
    app = state(request)
    key = idempotency.checked_key(request.headers.get(idempotency.HEADER))
    if key is not None:
        return await _idempotent(app, campaign_id, request, key)
    with app.intake.request():
        raw = await request.body()  # over CLARION_MAX_BODY_BYTES: 413 (the app's limit)

        # On SQLite these reads are short and local: run them on the event loop rather than
        # pay two thread hand-offs. A networked database gets the threadpool.
        if app.db.is_sqlite:
            row, absent = _checked(app, request, campaign_id, raw)
        else:
            row, absent = await run_in_threadpool(_checked, app, request, campaign_id, raw)
        await app.intake.submit(row)
    return _accepted(row, absent)


def _checked(
    app: Any, caller: Request | Principal, campaign_id: str, raw: bytes
) -> tuple[dict[str, Any], list[str]]:
    """Parse and check a trigger call (one read session); a refused broadcast is written to
    the audit log."""
    principal = caller if isinstance(caller, Principal) else None
    try:
        with app.db.read() as session:
            if principal is None:
                principal = principal_from(session, cast(Request, caller))
            body = parse_trigger(raw, app.settings.max_targets)
            return service.check(session, principal, campaign_id, body,
                                 app.settings.broadcast_multiplier)  # fmt: skip
    except amplification.BroadcastLimitExceeded as exc:
        assert principal is not None
        with app.db.write() as session:
            amplification.record_refusal(session, principal.project_id, principal.actor,
                                         campaign_id, exc)  # fmt: skip
        raise


def _accepted(row: dict[str, Any], absent: list[str]) -> JSONResponse:
    response = JSONResponse({"trigger_id": row["id"]})  # the Clix answer, nothing added
    if absent:  # a header, which Clix clients ignore: the templates will render these empty
        keys = ", ".join(f"trigger.{json.dumps(k)[1:-1]}" for k in absent)  # ASCII only
        response.headers["Clarion-Warning"] = (
            f"templates use {keys}, absent from properties: rendered empty"
        )
    return response


async def _idempotent(app: Any, campaign_id: str, request: Request, key: str) -> Response:
    """The trigger call under an Idempotency-Key: authenticate, claim the key (or answer from
    it), validate, accept; a refused request releases the key."""
    with app.intake.request():
        raw = await request.body()
        ttl = timedelta(hours=app.settings.idempotency_ttl_hours)
        print_ = idempotency.fingerprint("POST", request.url.path, raw)

        def claim() -> tuple[Any, idempotency.Claimed | idempotency.Replay]:
            with app.db.read() as session:
                principal = principal_from(session, request)
            with app.db.write() as session:
                return principal, idempotency.begin(session, principal.project_id, key,
                                                    print_, ttl)  # fmt: skip

        principal, outcome = await run_in_threadpool(claim)
        if isinstance(outcome, idempotency.Replay):
            headers = {**outcome.headers, "Idempotency-Replayed": "true"}
            return Response(outcome.body, outcome.status, media_type="application/json",
                            headers=headers)  # fmt: skip
        try:
            row, absent = await run_in_threadpool(_checked, app, principal, campaign_id, raw)
            response = _accepted(row, absent)
            stored = {k: v for k, v in response.headers.items() if k == "clarion-warning"}
            # Committed with the trigger: a crash cannot leave one without the other.
            await app.intake.submit({**row, "idempotency": (outcome, bytes(response.body),
                                                            stored)})  # fmt: skip
        except BaseException:
            await run_in_threadpool(_release, app, outcome)
            raise
    return response


def _release(app: Any, claimed: idempotency.Claimed) -> None:
    with app.db.write() as session:
        idempotency.release(session, claimed)


@router.get("/triggers/{trigger_id}", response_model=TriggerOut, summary="Trigger status")
def trigger_status(trigger_id: str, principal: FollowKey, request: Request) -> TriggerOut:
    with state(request).db.read() as session:
        return _status(session, service.get(session, principal, trigger_id))


@router.post(
    "/triggers/{trigger_id}:cancel",
    response_model=TriggerOut,
    summary="Cancel a trigger: its messages not yet handed over are not sent",
)
def cancel_trigger(trigger_id: str, principal: TriggerKey, request: Request) -> TriggerOut:
    """Stops a trigger that is accepted, resolving or sending: messages not yet handed to a
    provider end as ``cancelled`` (``counts.cancelled``), and no more are made. Cancelling
    again answers the same; a completed or failed trigger answers 409 trigger_finished."""
    app = state(request)
    with app.db.write() as session:
        trigger = service.cancel(session, principal, trigger_id)
    with app.db.read() as session:
        return _status(session, service.get(session, principal, trigger.id))


def _status(session: Any, trigger: Any) -> TriggerOut:
    counts = progress.counts(session, trigger)
    pending = counts.get("queued", 0) + counts.get("sending", 0)
    eta = None
    if pending and trigger.status in ("sending", "resolving"):
        rate = load_version(session, trigger.campaign_id, trigger.campaign_version).rate
        if rate:
            eta = utcnow() + timedelta(seconds=pending / rate)
    return TriggerOut(
        trigger_id=trigger.id,
        campaign_id=trigger.campaign_id,
        campaign_version=trigger.campaign_version,
        status=trigger.status,
        audience_mode=trigger.audience_mode,
        properties=trigger.properties,
        counts=Counts(
            matched=trigger.matched if trigger.matched is not None else sum(counts.values()),
            sent=counts.get("sent", 0),
            failed=counts.get("failed", 0),
            skipped=counts.get("skipped", 0),
            pending=pending,
            cancelled=counts.get("cancelled", 0),
        ),
        excluded_targets=trigger.excluded_targets or [],
        error=trigger.error,
        created_at=trigger.created_at,
        completed_at=trigger.completed_at,
        send_at=trigger.send_at,
        in_local_time=trigger.in_local_time,
        eta=eta,
    )


@router.get(
    "/triggers/{trigger_id}/messages", response_model=MessageList, summary="Trigger message log"
)
def trigger_messages(
    trigger_id: str,
    principal: FollowKey,
    request: Request,
    status: Annotated[
        Literal["queued", "sending", "sent", "failed", "skipped", "cancelled"] | None, Query()
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> MessageList:
    with state(request).db.read() as session:
        trigger = service.get(session, principal, trigger_id)
        rows = messages_repo.page(session, trigger.id, status, cursor, limit + 1)
    more = len(rows) > limit
    rows = list(rows[:limit])
    return MessageList(
        messages=[MessageOut.from_row(r) for r in rows],
        next_cursor=rows[-1].id if more and rows else None,
    )


@router.get(
    "/triggers/{trigger_id}/explain",
    response_model=ExplainOut,
    summary="Why a user or device was (not) reached by a trigger, step by step",
)
def explain_delivery(
    trigger_id: str,
    principal: FollowKey,
    request: Request,
    project_user_id: Annotated[str | None, Query(max_length=255)] = None,
    device_id: Annotated[str | None, Query(max_length=255)] = None,
) -> ExplainOut:
    """The seed's debugging checklist for one target: the target, each audience condition
    with the values compared, devices and tokens, rendering, and the message log."""
    if (project_user_id is None) == (device_id is None):
        raise InvalidRequest("give exactly one of project_user_id or device_id",
                             path="query")  # fmt: skip
    who = project_user_id or device_id or ""
    with state(request).db.read() as session:
        trigger = service.get(session, principal, trigger_id)
        version = load_version(session, trigger.campaign_id, trigger.campaign_version)
        kind: Literal["user", "device"] = "user" if project_user_id is not None else "device"
        steps = explain.explain(session, trigger, version, who, time.time(), kind)
    return ExplainOut(
        trigger_id=trigger.id,
        campaign_id=trigger.campaign_id,
        target=Target(project_user_id=project_user_id, device_id=device_id),
        reached=explain.reached(steps),
        first_failure=explain.first_failure(steps),
        steps=[ExplainStep(title=s.title, ok=s.ok, detail=s.detail) for s in steps],
    )


@router.post(
    "/campaigns/{campaign_id}:dry-run",
    response_model=DryRunOut,
    summary="Dry run: who would receive what, and why not; nothing is sent",
    openapi_extra=TRIGGER_BODY_DOC,
)
async def dry_run_campaign(
    campaign_id: str,
    request: Request,
    sample: Annotated[int, Query(ge=0, le=dry_run.MAX_SAMPLE)] = 10,
) -> DryRunOut:
    """Takes the same body as :trigger; resolves, counts and renders a sample, sends
    nothing and writes nothing."""
    app = state(request)
    raw = await request.body()

    def run() -> DryRunOut:
        with app.db.read() as session:
            principal = principal_from(session, request)
            body = parse_trigger(raw, app.settings.max_targets)
            return dry_run.dry_run(session, principal, campaign_id, body, sample)

    return await run_in_threadpool(run)
