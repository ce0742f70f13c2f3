"""Delivery controls, checked when a message is about to be handed over:

- quiet hours (the project's, or the campaign's own): no sends between, say, 22:00 and 08:00
  in the device's timezone; a message is held until the window ends, or dropped, as
  configured; urgent campaigns (a password reset) go through;
- re-eligibility (a campaign setting): a user receives the campaign every time (the
  default), once ever, or once per window;
- the project's frequency cap per channel: at most N messages per user per period, across
  campaigns; transactional campaigns are exempt unless they opt in, and exempt campaigns'
  messages do not count.

A recipient held back by re-eligibility or a cap, or dropped by quiet hours, ends
``skipped`` with the reason in the message log. Without any of these settings nothing here
runs (the checks cost nothing on the hot path)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import Table, bindparam, func, select, text
from sqlalchemy.orm import Session

from clarion import cache
from clarion.audit import service as audit
from clarion.storage.models import Message, Project, Trigger
from clarion.triggers.schedule import zone

Channel = Literal["push", "in_app", "email", "webhook"]
_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
COUNTED = ("sent", "sending")  # a message being handed over counts as received


class QuietHours(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    start: str = Field(description="HH:MM, the device's local time the window opens.")
    end: str = Field(description="HH:MM, when it closes (before start: across midnight).")
    action: Literal["delay", "drop"] = Field(
        default="delay", description="delay: held until the window ends; drop: skipped."
    )

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not _CLOCK.match(value):
            raise ValueError(f"{value!r} is not a time of day as HH:MM (22:00)")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("start and end are the same: the window would be empty")
        return self

    def ends(self, local: datetime) -> datetime | None:
        """When the window ends, if ``local`` (aware, in the device's zone) falls inside it;
        None outside it."""
        start, end = _time(self.start), _time(self.end)
        now = local.timetz().replace(tzinfo=None)
        if start < end:
            inside = start <= now < end
            day = local.date()
        else:  # across midnight
            inside = now >= start or now < end
            day = local.date() + timedelta(days=1) if now >= start else local.date()
        if not inside:
            return None
        closes = datetime.combine(day, end).replace(tzinfo=local.tzinfo, fold=0)
        return closes.astimezone(UTC)

    def describe(self) -> str:
        return f"{self.start}-{self.end}"


def _time(text_: str) -> time:
    hours, minutes = text_.split(":")
    return time(int(hours), int(minutes))


class FrequencyCap(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max: int = Field(ge=1, le=1000, description="Messages per user ...")
    per_hours: float = Field(gt=0, le=24 * 90, description="... per this many hours.")


class ProjectDelivery(BaseModel):
    """A project's delivery settings (`clarion projects set-frequency-cap`, `set-quiet-hours`
    or PUT /api/v1/project/delivery)."""

    model_config = ConfigDict(extra="forbid")

    frequency_caps: dict[Channel, FrequencyCap] = Field(default_factory=dict)
    quiet_hours: QuietHours | None = None


class CampaignDelivery(BaseModel):
    """A campaign's delivery controls (its ``delivery`` section)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["transactional", "marketing"] = Field(
        default="transactional",
        description="Transactional sends (receipts, resets) are exempt from frequency caps "
        "unless frequency_cap says apply.",
    )
    reeligibility: Literal["every_time", "once", "once_per_window"] = "every_time"
    reeligibility_window_hours: float | None = Field(default=None, gt=0, le=24 * 365)
    frequency_cap: Literal["default", "apply", "exempt"] = Field(
        default="default", description="default: exempt when transactional."
    )
    urgent: bool = Field(default=False, description="Goes through quiet hours.")
    quiet_hours: QuietHours | Literal["off"] | None = Field(
        default=None, description="This campaign's own window; off: none; omit: the project's."
    )
    throttle_per_minute: float | None = Field(
        default=None, gt=0, le=6_000_000,
        description="At most this many messages a minute, spread evenly; the rest waits.",
    )  # fmt: skip

    @model_validator(mode="after")
    def _window(self) -> CampaignDelivery:
        if (self.reeligibility == "once_per_window") != (
            self.reeligibility_window_hours is not None
        ):
            raise ValueError(
                "reeligibility once_per_window needs reeligibility_window_hours (and only it)"
            )
        return self

    @property
    def capped(self) -> bool:
        """Its messages are held to, and count toward, the project's frequency caps."""
        if self.frequency_cap == "default":
            return self.kind == "marketing"
        return self.frequency_cap == "apply"

    def quiet(self, project: ProjectDelivery) -> QuietHours | None:
        if self.urgent or self.quiet_hours == "off":
            return None
        return self.quiet_hours if isinstance(self.quiet_hours, QuietHours) else (
            project.quiet_hours)  # fmt: skip


NO_CONTROLS = CampaignDelivery()
NO_SETTINGS = ProjectDelivery()


def project_settings(session: Session, project_id: str) -> ProjectDelivery:
    key = f"delivery:{project_id}"
    cached = cache.projects.get(key)
    if isinstance(cached, ProjectDelivery):
        return cached
    raw = session.scalar(select(Project.delivery_settings).where(Project.id == project_id))
    settings = ProjectDelivery.model_validate(raw) if raw else NO_SETTINGS
    cache.projects.put(key, settings)
    return settings


def save_project_settings(
    session: Session, project_id: str, settings: ProjectDelivery, actor: str
) -> ProjectDelivery:
    project = session.get(Project, project_id)
    assert project is not None, "the caller's project exists"
    before = project.delivery_settings
    after = settings.model_dump(mode="json", exclude_defaults=True) or None
    project.delivery_settings = after
    session.flush()
    cache.projects.clear()
    if before != after:
        audit.record(session, project_id, actor, "project.delivery_settings", "project",
                     project_id, before=before, after=after)  # fmt: skip
    return settings


def quiet_until(quiet: QuietHours, timezone: str | None, now: datetime) -> datetime | None:
    """When the quiet window the device is in ends (None: not in one). A device of unknown
    timezone is judged in UTC."""
    return quiet.ends(now.astimezone((zone(timezone) if timezone else None) or UTC))


def quiet_reason(quiet: QuietHours, timezone: str | None, now: datetime) -> str:
    where = (zone(timezone) if timezone else None) or UTC
    local = now.astimezone(where)
    return (f"quiet_hours: {local:%H:%M} in {where} is within the quiet hours "
            f"{quiet.describe()}")  # fmt: skip


# -- re-eligibility and caps ---------------------------------------------------------------
M = Message.__table__
T = Trigger.__table__
assert isinstance(M, Table) and isinstance(T, Table)
_WHEN = func.coalesce(M.c.sent_at, M.c.created_at)
_SINCE = _WHEN >= bindparam("since")  # noqa: SIM300 (a column expression, not a constant)
_RECEIVED = (
    select(M.c.user_id, func.max(_WHEN))
    .join(T, T.c.id == M.c.trigger_id)
    .where(
        M.c.user_id.in_(bindparam("uids", expanding=True)),
        T.c.campaign_id == bindparam("cid"),
        M.c.trigger_id != bindparam("tid"),
        M.c.status.in_(COUNTED),
        _SINCE,
    )
    .group_by(M.c.user_id)
)
_CAPPED = (
    select(M.c.user_id, func.count(func.distinct(M.c.trigger_id)))
    .where(
        M.c.user_id.in_(bindparam("uids", expanding=True)),
        M.c.channel == bindparam("channel"),
        M.c.capped.is_(True),
        M.c.status.in_(COUNTED),
        M.c.trigger_id.not_in(bindparam("tids", expanding=True)),
        _SINCE,
    )
    .group_by(M.c.user_id)
)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One message about to be handed over, with what the checks need."""

    message_id: str
    user_id: str
    trigger_id: str
    campaign_id: str
    channel: str
    project_id: str
    controls: CampaignDelivery


def serialise(session: Session, project_ids: Iterable[str]) -> None:
    """On PostgreSQL, one project's checks and marks at a time (a transaction lock), so that
    two workers cannot both let a user past a cap of one; SQLite's write lock does this."""
    if session.get_bind().dialect.name == "postgresql":
        for project_id in sorted(set(project_ids)):
            session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                            {"k": f"clarion-caps:{project_id}"})  # fmt: skip


def held_back(session: Session, candidates: Sequence[Candidate], now: datetime) -> dict[str, str]:
    """Message id -> skip reason, for those re-eligibility or a frequency cap holds back.
    Runs inside the transaction that marks the others as being sent."""
    checked = [c for c in candidates if c.controls.reeligibility != "every_time"
               or c.controls.capped]  # fmt: skip
    if not checked:
        return {}
    serialise(session, {c.project_id for c in checked})
    out: dict[str, str] = {}
    by_trigger: dict[str, list[Candidate]] = {}
    for c in checked:
        by_trigger.setdefault(c.trigger_id, []).append(c)
    granted: dict[str, set[str]] = {}  # per campaign, users an earlier trigger here reaches
    for trigger_id, group in sorted(by_trigger.items()):
        held = _not_reeligible(session, trigger_id, group, now)
        if group[0].controls.reeligibility != "every_time":
            earlier = granted.setdefault(group[0].campaign_id, set())
            for c in group:
                if c.message_id not in held and c.user_id in earlier:
                    held[c.message_id] = ("not_reeligible: another trigger of this campaign "
                                          "reaches the user at the same time")  # fmt: skip
            earlier.update(c.user_id for c in group if c.message_id not in held)
        out.update(held)
    rest = [c for c in checked if c.message_id not in out and c.controls.capped]
    out.update(_over_cap(session, rest, now))
    return out


def _not_reeligible(
    session: Session, trigger_id: str, group: list[Candidate], now: datetime
) -> dict[str, str]:
    controls = group[0].controls
    if controls.reeligibility == "every_time":
        return {}
    hours = controls.reeligibility_window_hours
    since = now - timedelta(hours=hours) if hours else EPOCH
    users = sorted({c.user_id for c in group})
    params = {"uids": users, "cid": group[0].campaign_id, "tid": trigger_id, "since": since}
    received: dict[str, Any] = {u: at for u, at in session.execute(_RECEIVED, params)}
    rule = f"once per {hours:g} h" if hours else "once"
    return {
        c.message_id: f"not_reeligible: received this campaign at {_at(received[c.user_id])}; "
        f"it reaches a user {rule}"
        for c in group
        if c.user_id in received
    }


def _over_cap(session: Session, candidates: list[Candidate], now: datetime) -> dict[str, str]:
    out: dict[str, str] = {}
    groups: dict[tuple[str, str], list[Candidate]] = {}
    for c in candidates:
        groups.setdefault((c.project_id, c.channel), []).append(c)
    for (project_id, channel), group in groups.items():
        cap = project_settings(session, project_id).frequency_caps.get(channel)  # type: ignore[call-overload]
        if cap is None:
            continue
        since = now - timedelta(hours=cap.per_hours)
        users = sorted({c.user_id for c in group})
        triggers = sorted({c.trigger_id for c in group})
        params = {"uids": users, "channel": channel, "tids": triggers, "since": since}
        counts: dict[str, int] = {u: int(n) for u, n in session.execute(_CAPPED, params)}
        allowed: dict[str, set[str]] = {}  # per user, this batch's triggers let through
        for c in sorted(group, key=lambda c: (c.trigger_id, c.message_id)):
            mine = allowed.setdefault(c.user_id, set())
            if c.trigger_id in mine:
                continue  # another device of a user this trigger already reaches
            if counts.get(c.user_id, 0) + len(mine) >= cap.max:
                out[c.message_id] = (
                    f"frequency_cap: the user already received {cap.max} {channel} message(s) "
                    f"in the last {cap.per_hours:g} h (the project's cap)"
                )
                continue
            mine.add(c.trigger_id)
    return out


def _at(value: Any) -> str:
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return str(value)


def mapping(controls: Mapping[str, Any] | None) -> CampaignDelivery:
    return CampaignDelivery.model_validate(controls) if controls else NO_CONTROLS
