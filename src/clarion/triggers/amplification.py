"""The broadcast amplification guard (OWASP API4: unrestricted resource consumption).

A leaked key or a runaway loop must not turn one project's push quota into a flood: within
any 15 minutes, broadcasts (``audience.broadcast: true``) may reach at most ``multiplier``
times the project's device count (10 by default, as OneSignal does). A broadcast counts as
the recipients it matched, or, until it is resolved, as every device. Past the limit the
trigger is refused with 403 ``broadcast_limit_exceeded``, the refusal goes to the audit log,
and broadcasts stay refused until the window moves on or an admin raises the multiplier
(``clarion projects set-broadcast-limit``). Targeted and rule-based triggers, the
transactional traffic, are not counted: their audiences are bounded by their rules.

Two broadcasts checked at the same instant can both pass: the guard bounds floods, it is not
an exact quota.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from clarion.audit import service as audit
from clarion.auth import service as auth
from clarion.errors import ClarionError
from clarion.storage.models import Device, Project, Trigger, utcnow

WINDOW = timedelta(minutes=15)


class BroadcastLimitExceeded(ClarionError):
    status_code = 403
    code = "broadcast_limit_exceeded"


def multiplier(session: Session, project_id: str, default: float) -> float:
    own = session.scalar(select(Project.broadcast_multiplier).where(Project.id == project_id))
    return own if own is not None else default


def check(
    session: Session, project_id: str, default_multiplier: float, now: datetime | None = None
) -> None:
    """Raise BroadcastLimitExceeded if one more broadcast could pass the limit."""
    now = now or utcnow()
    devices = session.scalar(select(func.count()).where(Device.project_id == project_id)) or 0
    counted = case((Trigger.matched.is_(None), devices), else_=Trigger.matched)
    recent = select(func.coalesce(func.sum(counted), 0)).where(
        Trigger.project_id == project_id,
        Trigger.audience_mode == "broadcast",
        Trigger.created_at >= now - WINDOW,
    )
    sent = session.scalar(recent) or 0
    times = multiplier(session, project_id, default_multiplier)
    limit = times * devices
    if sent + devices > limit:
        raise BroadcastLimitExceeded(
            f"Broadcast refused: this project's broadcasts reached {sent:,} recipients in the "
            f"last 15 minutes, and one more could reach {devices:,} devices, past the limit of "
            f"{times:g} x {devices:,} devices = {limit:,.0f}. Wait for the window to move on, "
            "or have an admin raise it: clarion projects set-broadcast-limit MULTIPLIER.",
            sent=sent,
            devices=devices,
            multiplier=times,
        )


def record_refusal(
    session: Session, project_id: str, actor: str, campaign_id: str, error: ClarionError
) -> None:
    audit.record(session, project_id, actor, "broadcast.refused", "campaign", campaign_id,
                 **{k: error.details[k] for k in ("sent", "devices", "multiplier")})  # fmt: skip


def set_multiplier(
    session: Session, project_id: str, value: float | None, actor: str = audit.CLI
) -> None:
    """Set the project's multiplier; None returns it to the default."""
    auth.set_limit(session, project_id, "broadcast_multiplier", value, actor)
