""" "Why didn't user X get it?" for one trigger: the seed's debugging checklist, answered
step by step from stored state, with the same evaluators the pipeline and the dry run use:
the target, each audience condition (pass or fail, with the values compared), the device
and token checks, rendering, and what the message log says happened. The console's trigger
page and ``GET /api/v1/triggers/{id}/explain`` both show it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from clarion.audience import reference
from clarion.auth import service as auth
from clarion.campaigns.service import Version
from clarion.delivery.context import DeviceView, template_context
from clarion.delivery.pipeline import SKIP_NO_EMAIL, email_address, skip_reason
from clarion.messages import repository as messages
from clarion.storage.models import Device, Message, Trigger, User
from clarion.templating.message import MessageRejected
from clarion.triggers import recipients

LOG = "Message log"


@dataclass(frozen=True)
class Step:
    title: str
    ok: bool | None  # None: informational
    detail: str


def reached(steps: list[Step]) -> bool:
    """A message of the trigger was sent to the target (the message-log steps say so)."""
    return any(s.title == LOG and s.ok for s in steps)


def first_failure(steps: list[Step]) -> str | None:
    failed = next((s for s in steps if s.ok is False), None)
    return None if failed is None else f"{failed.title}: {failed.detail}"


def _actual(condition: Any, user: User, devices: list[Device]) -> str:
    """The stored value(s) the condition compared, for the reader."""
    if condition.scope == "property":
        value = (user.properties or {}).get(condition.property_key)
        return "absent" if value is None else repr(value)
    if condition.attribute == "user_id":
        return repr(user.project_user_id)
    if condition.attribute == "last_session_at":
        return str(user.last_session_at) if user.last_session_at else "never"
    if not devices:
        return "no device"
    return ", ".join(f"{d.id}: {getattr(d, condition.attribute)!r}" for d in devices)


def explain(
    session: Session,
    trigger: Trigger,
    version: Version,
    who: str,
    now: float,
    kind: Literal["user", "device"] | None = None,
) -> list[Step]:
    """``who``: a project user id or a device id (``kind`` says which; None: either)."""
    project_id = trigger.project_id
    user = None
    if kind != "device":
        user = session.scalars(
            select(User).where(User.project_id == project_id, User.project_user_id == who)
        ).first()
    devices: list[Device]
    if user is not None:
        devices = list(session.scalars(select(Device).where(Device.user_id == user.id)))
        steps = [Step("Target", True, f"User {who!r} exists with {len(devices)} device(s).")]
    else:
        device = session.get(Device, (project_id, who)) if kind != "user" else None
        user = session.get(User, device.user_id) if device is not None else None
        if device is None or user is None:
            noun = kind or "user or device"
            return [Step("Target", False, f"No {noun} {who!r} in this project: check "
                         "the id the backend sent, and that the app registered it.")]  # fmt: skip
        devices = [device]
        steps = [Step("Target", True, f"Device {who!r} of user {user.project_user_id!r}.")]
    if trigger.audience_mode == "targets":
        named = {t.get("project_user_id") for t in trigger.targets} | {
            t.get("device_id") for t in trigger.targets
        }
        listed = user.project_user_id in named or any(d.id in named for d in devices)
        steps.append(Step("Among the trigger's targets", listed,
                          "yes" if listed else "The trigger named other targets; this one was "
                          "not in audience.targets."))  # fmt: skip
    bound = version.audience.bind(trigger.properties)
    user_facts, device_facts = reference.facts(user, devices)
    candidates: list[Any] = list(device_facts) or [None]
    conditions = list(version.audience.located())
    for located in conditions:
        condition = located.condition
        holds = any(
            reference.holds(condition, bound[located.index], user_facts, d, now) for d in candidates
        )
        compared = ", ".join(repr(v) for v in bound[located.index]) or "—"
        steps.append(Step(f"Condition {located.path}: {condition.describe()}", holds,
                          f"compared with {compared}; stored: "
                          f"{_actual(condition, user, devices)}"))  # fmt: skip
    if not conditions:
        steps.append(Step("Audience", True, "The campaign has no conditions: everyone."))
    admitted = reference.recipients(version.audience, bound, user_facts, device_facts, now)
    if version.per_user:
        if version.email is not None:
            prop = version.email.to_property
            address = email_address(user.properties, prop)
            steps.append(Step("E-mail address", bool(address),
                              address or SKIP_NO_EMAIL.format(prop=prop)))  # fmt: skip
    else:
        for d in devices:
            reason = skip_reason(d.id, d.push_token, d.is_push_permission_granted)
            detail = reason or "has a push token and push permission"
            fails_device_rule = bool(admitted) and d.id not in admitted
            if fails_device_rule:
                detail += "; but this device fails a device condition above"
            steps.append(Step(f"Device {d.id} ({d.platform or '?'})",
                              reason is None and not fails_device_rule, detail))  # fmt: skip
        if not devices:
            steps.append(Step("Devices", False, skip_reason(None, None, None) or ""))
    first = devices[0] if devices else None
    given = recipients.NONE
    if trigger.audience_mode == "targets":
        given = recipients.of(session, project_id, trigger.targets, version.per_user)
    whose = given.key(user.project_user_id, None if version.per_user or first is None
                      else first.id)  # fmt: skip
    renderer = version.plan.for_trigger(given.merged(trigger.properties, whose),
                                        auth.url_schemes(session, project_id))  # fmt: skip
    context = template_context(renderer.properties, user.project_user_id, user.properties,
                               DeviceView.of(first) if first else None)  # fmt: skip
    try:
        fields = renderer.render(context)
        shown = fields.get("title") or fields.get("subject") or "(rendered)"
        steps.append(Step("Rendering", True, f"renders: {shown}"))
    except MessageRejected as exc:
        steps.append(Step("Rendering", False, exc.reason))
    log_status = messages.shown_status(session.get_bind().dialect)
    sent = session.execute(
        select(Message, log_status).where(
            Message.trigger_id == trigger.id, Message.user_id == user.id
        )
    ).all()
    if not sent:
        steps.append(Step(LOG, False, "No message for this user in this trigger."))
    for m, status in sent:
        where = f" to device {m.device_id}" if m.device_id else ""
        outcome = f"{status}{where}" + (f" via {m.provider}" if m.provider else "")
        steps.append(Step(LOG, status == "sent",
                          outcome + (f": {m.reason}" if m.reason else "")))  # fmt: skip
    return steps
