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


class QuietClock:
    """Quiet hours for one step: a device's answer depends only on its timezone, so each
    (window, timezone) is worked out once."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self._seen: dict[tuple[QuietHours, str | None], datetime | None] = {}

    def until(self, quiet: QuietHours, timezone: str | None) -> datetime | None:
        key = (quiet, timezone)
        if key not in self._seen:
            self._seen[key] = quiet_until(quiet, timezone, self.now)
        return self._seen[key]


# -- re-eligibility and caps ---------------------------------------------------------------
M = Message.__table__
T = Trigger.__table__
assert isinstance(M, Table) and isinstance(T, Table)
_WHEN = func.coalesce(M.c.sent_at, M.c.created_at)
# What the checks need of the users' recent messages, read once per step (by the messages'
# unique constraint, which leads with the user).
_HISTORY = (
    select(M.c.user_id, M.c.trigger_id, T.c.campaign_id, M.c.channel, M.c.capped, _WHEN)
    .join(T, T.c.id == M.c.trigger_id)
    .where(
        M.c.user_id.in_(bindparam("uids", expanding=True)),
        M.c.status.in_(COUNTED),
        _WHEN >= bindparam("since"),  # noqa: SIM300 (a column expression, not a constant)
    )
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


@dataclass(frozen=True, slots=True)
class Past:
    """A message a user received (or is being handed): one row of _HISTORY."""

    trigger_id: str
    campaign_id: str
    channel: str
    capped: bool
    at: datetime


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
    if not candidates:
        return {}
    serialise(session, {c.project_id for c in candidates})
    caps = {(c.project_id, c.channel): project_settings(session, c.project_id)
            .frequency_caps.get(c.channel)  # type: ignore[call-overload]
            for c in candidates if c.controls.capped}  # fmt: skip
    windows = [_since(c.controls, now) for c in candidates
               if c.controls.reeligibility != "every_time"]  # fmt: skip
    windows += [now - timedelta(hours=cap.per_hours) for cap in caps.values() if cap]
    if not windows:  # capped campaigns, but no cap set for their channels
        return {}
    history = _history(session, {c.user_id for c in candidates}, min(windows))
    out: dict[str, str] = {}
    by_trigger: dict[str, list[Candidate]] = {}
    for c in candidates:
        by_trigger.setdefault(c.trigger_id, []).append(c)
    granted: dict[str, set[str]] = {}  # per campaign, users an earlier trigger here reaches
    for trigger_id, group in sorted(by_trigger.items()):
        controls = group[0].controls
        if controls.reeligibility == "every_time":
            continue
        earlier = granted.setdefault(group[0].campaign_id, set())
        held = _not_reeligible(trigger_id, group, history, _since(controls, now), earlier)
        earlier.update(c.user_id for c in group if c.message_id not in held)
        out.update(held)
    rest = [c for c in candidates if c.message_id not in out and c.controls.capped]
    out.update(_over_cap(rest, history, caps, now, set(by_trigger)))
    return out


def _since(controls: CampaignDelivery, now: datetime) -> datetime:
    hours = controls.reeligibility_window_hours
    return now - timedelta(hours=hours) if hours else EPOCH


def _history(session: Session, users: set[str], since: datetime) -> dict[str, list[Past]]:
    out: dict[str, list[Past]] = {}
    rows = session.execute(_HISTORY, {"uids": sorted(users), "since": since})
    for user_id, trigger_id, campaign_id, channel, capped, at in rows:
        when = at if at.tzinfo else at.replace(tzinfo=UTC)
        out.setdefault(user_id, []).append(Past(trigger_id, campaign_id, channel, capped, when))
    return out


def _not_reeligible(
    trigger_id: str,
    group: list[Candidate],
    history: dict[str, list[Past]],
    since: datetime,
    earlier: set[str],
) -> dict[str, str]:
    hours = group[0].controls.reeligibility_window_hours
    rule = f"once per {hours:g} h" if hours else "once"
    campaign_id = group[0].campaign_id
    out: dict[str, str] = {}
    for c in group:
        times = [p.at for p in history.get(c.user_id, ())
                 if p.campaign_id == campaign_id and p.trigger_id != trigger_id
                 and p.at >= since]  # fmt: skip
        if times:
            out[c.message_id] = (f"not_reeligible: received this campaign at {_at(max(times))}; "
                                 f"it reaches a user {rule}")  # fmt: skip
        elif c.user_id in earlier:
            out[c.message_id] = ("not_reeligible: another trigger of this campaign reaches the "
                                 "user at the same time")  # fmt: skip
    return out


def _over_cap(
    candidates: list[Candidate],
    history: dict[str, list[Past]],
    caps: Mapping[tuple[str, str], FrequencyCap | None],
    now: datetime,
    current: set[str],
) -> dict[str, str]:
    out: dict[str, str] = {}
    allowed: dict[tuple[str, str], set[str]] = {}  # per (user, channel): triggers let through
    for c in sorted(candidates, key=lambda c: (c.trigger_id, c.message_id)):
        cap = caps.get((c.project_id, c.channel))
        if cap is None:
            continue
        mine = allowed.setdefault((c.user_id, c.channel), set())
        if c.trigger_id in mine:
            continue  # another device of a user this trigger already reaches
        since = now - timedelta(hours=cap.per_hours)
        before = {p.trigger_id for p in history.get(c.user_id, ())
                  if p.capped and p.channel == c.channel and p.at >= since
                  and p.trigger_id not in current}  # fmt: skip
        if len(before) + len(mine) >= cap.max:
            out[c.message_id] = (
                f"frequency_cap: the user already received {cap.max} {c.channel} message(s) "
                f"in the last {cap.per_hours:g} h (the project's cap)"
            )
            continue
        mine.add(c.trigger_id)
    return out


def _at(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def mapping(controls: Mapping[str, Any] | None) -> CampaignDelivery:
    """A saved ``delivery`` section; NO_CONTROLS itself when there is none."""
    return CampaignDelivery.model_validate(controls) if controls else NO_CONTROLS
