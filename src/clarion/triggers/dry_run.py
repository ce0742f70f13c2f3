"""A dry run: everything a trigger would do up to the hand-over, and nothing sent.

It counts the recipients and why some cannot be reached, counts what each condition admits
on its own, renders a sample of messages, and explains every target that would get
nothing: no such user or device, the conditions it fails (from the reference evaluator),
or no token / no permission.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

from sqlalchemy import null, select
from sqlalchemy.orm import Session

from clarion.audience import compiler, reference
from clarion.audience.reference import facts
from clarion.auth import service as auth
from clarion.auth.service import Principal
from clarion.campaigns.service import Version
from clarion.delivery.context import DeviceView, template_context
from clarion.delivery.pipeline import SKIP_NO_EMAIL, email_address, log_fields, skip_reason
from clarion.storage.models import Device, User
from clarion.templating.message import MessageRejected, TriggerMessages
from clarion.triggers import recipients as recipient_properties
from clarion.triggers import service
from clarion.triggers.body import TriggerRequest
from clarion.triggers.dry_run_schemas import (
    ConditionReach,
    DryRunOut,
    ExcludedTarget,
    Reach,
    RenderedMessage,
    SampleRecipient,
)

MAX_SAMPLE = 100


def dry_run(
    session: Session,
    principal: Principal,
    campaign_id: str,
    request: TriggerRequest,
    sample_size: int,
) -> DryRunOut:
    campaign, version = service.campaign_version(
        session, principal, campaign_id, request, require_active=False
    )
    audience = version.audience
    bound = audience.bind(request.properties)
    now = time.time()
    targets = request.targets if request.mode == "targets" else None
    targeted = targets is not None
    params = compiler.params(principal.project_id, audience, bound, now, targets)
    tally: Any = session.execute(compiler.tally(audience, targeted), params).one()._asdict()
    if version.per_user:  # in-app, e-mail, webhook: one message per user, no device needed
        tally.update(rows=tally["users"], no_device=0, no_token=0, permission_off=0)
    tally = SimpleNamespace(**tally)
    reach = Reach(
        users=tally.users,
        devices=tally.devices,
        messages=tally.rows,
        reachable=tally.rows - (tally.no_device or 0) - (tally.no_token or 0)
        - (tally.permission_off or 0),
        no_device=tally.no_device or 0,
        no_push_token=tally.no_token or 0,
        push_permission_off=tally.permission_off or 0,
    )  # fmt: skip
    conditions = []
    for located in audience.located():
        users, devices = session.execute(
            compiler.admitted(located.condition, located.index), params
        ).one()
        conditions.append(
            ConditionReach(
                path=located.path,
                condition=located.condition.describe(),
                users=users,
                devices=devices,
            )
        )
    recipients = compiler.recipients(audience, targeted)
    if version.per_user:  # one message per user: sample users, not devices
        sub = recipients.subquery()
        recipients = select(*list(sub.c)[:2], null()).distinct()
    rows = session.execute(recipients.limit(sample_size), params)
    schemes = auth.url_schemes(session, principal.project_id)
    given = recipient_properties.of(session, principal.project_id, targets or [],
                                    version.per_user)  # fmt: skip
    renderers: dict[recipient_properties.Key, TriggerMessages] = {}

    def renderer_for(row: Any) -> TriggerMessages:
        whose = given.key(row[1], row[2])
        if whose not in renderers:
            merged = given.merged(request.properties, whose)
            renderers[whose] = version.plan.for_trigger(merged, schemes)
        return renderers[whose]

    sample = [_sample(session, renderer_for(row), row, version) for row in rows]
    excluded = _explain_targets(session, principal.project_id, version, bound, now, targets or [])
    warnings = list(version.plan.warnings)
    absent = [k for k in version.plan.trigger_keys if k not in request.properties]
    if absent:
        listed = ", ".join(f"trigger.{k}" for k in absent)
        warnings.append(f"The templates use {listed}, which this body does not send.")
    if campaign.status != "active":
        warnings.append(
            f"The campaign is {campaign.status}: a real trigger would be refused until it is "
            "activated."
        )
    return DryRunOut(
        campaign_id=campaign.id,
        campaign_version=campaign.version,
        campaign_status=campaign.status,
        audience_mode=request.mode,
        audience=audience.describe(),
        reach=reach,
        conditions=conditions,
        sample=sample,
        excluded_targets=excluded,
        warnings=warnings,
    )


def _skip_reason(device: Device | None) -> str | None:
    if device is None:
        return skip_reason(None, None, None)
    return skip_reason(device.id, device.push_token, device.is_push_permission_granted)


def _sample(
    session: Session, renderer: TriggerMessages, row: Any, version: Version
) -> SampleRecipient:
    user_id, project_user_id, device_id = row[0], row[1], row[2]
    user = session.get(User, user_id)
    device = session.get(Device, (user.project_id, device_id)) if user and device_id else None
    reason = None if version.per_user else _skip_reason(device)
    if version.email is not None:
        prop = version.email.to_property
        if not email_address(user.properties if user else None, prop):
            reason = SKIP_NO_EMAIL.format(prop=prop)
    if reason is not None:
        return SampleRecipient(
            project_user_id=project_user_id, device_id=device_id, status="skipped", reason=reason
        )
    view = DeviceView.of(device) if device is not None else None
    context = template_context(
        renderer.properties, project_user_id, user.properties if user else {}, view
    )
    try:
        fields = renderer.render(context)
    except MessageRejected as exc:
        return SampleRecipient(
            project_user_id=project_user_id,
            device_id=device_id,
            status=exc.code,
            reason=exc.reason,
        )
    return SampleRecipient(
        project_user_id=project_user_id,
        device_id=device_id,
        status="would_send",
        message=RenderedMessage(**log_fields(version, fields)),
    )


def _explain_targets(
    session: Session,
    project_id: str,
    version: Version,
    bound: list[list[Any]],
    now: float,
    targets: list[dict[str, str]],
) -> list[ExcludedTarget]:
    out: list[ExcludedTarget] = []
    for target in targets:
        if "project_user_id" in target:
            puid = target["project_user_id"]
            user = session.scalars(
                select(User).where(User.project_id == project_id, User.project_user_id == puid)
            ).first()
            if user is None:
                out.append(
                    ExcludedTarget(
                        project_user_id=puid,
                        reason="unknown_user",
                        detail=f"No user {puid!r} in this project.",
                    )
                )
                continue
            devices = list(session.scalars(select(Device).where(Device.user_id == user.id)))
            key: dict[str, str] = {"project_user_id": puid}
        else:
            did = target["device_id"]
            device = session.get(Device, (project_id, did))
            found = session.get(User, device.user_id) if device else None
            if device is None or found is None or found.project_user_id is None:
                detail = (
                    f"No device {did!r} in this project."
                    if device is None
                    else f"Device {did!r} belongs to an anonymous user; identify it first."
                )
                out.append(ExcludedTarget(device_id=did, reason="unknown_device", detail=detail))
                continue
            user, devices, key = found, [device], {"device_id": did}
        explained = _explain(version, bound, now, user, devices, key)
        if explained is not None:
            out.append(explained)
    return out


def _explain(
    version: Version,
    bound: list[list[Any]],
    now: float,
    user: User,
    devices: list[Device],
    key: dict[str, str],
) -> ExcludedTarget | None:
    user_facts, device_facts = facts(user, devices)
    audience = version.audience
    receiving = reference.recipients(audience, bound, user_facts, device_facts, now)
    if not receiving:
        failing = reference.failing(audience, bound, user_facts, device_facts, now)
        return ExcludedTarget(
            **key,
            reason="segment_mismatch",
            detail="The campaign's audience rules do not admit this target.",
            failing_conditions=failing,
        )
    by_id = {d.id: d for d in devices}
    reasons = [_skip_reason(by_id.get(d) if d else None) for d in receiving]
    if all(reasons):
        first = reasons[0] or ""
        code = first.split(":", 1)[0]
        return ExcludedTarget(**key, reason=code, detail=first)
    return None
