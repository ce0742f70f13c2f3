"""Parse and check a ``:trigger`` body by hand, so that every refusal names its JSON path."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

import orjson

from clarion import clock, limits
from clarion.errors import InvalidJSON, InvalidRequest

Mode = Literal["broadcast", "targets", "default"]
TARGET_KEYS = ("project_user_id", "device_id")


class TooManyTargets(InvalidRequest):
    code = "too_many_targets"


MAX_AHEAD = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class TriggerRequest:
    mode: Mode
    targets: list[dict[str, Any]] = field(default_factory=list)  # an id, and "properties"
    properties: dict[str, Any] = field(default_factory=dict)
    send_at: datetime | None = None  # Clarion: deliver later (aware)
    in_local_time: bool = False  # send_at's wall-clock time in each device's timezone


def parse_json(raw: bytes) -> Any:
    if not raw.strip():
        return None
    # Text with NUL characters never gets here: the API route refuses it (web._ApiRoute).
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidJSON(
            f"The body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno} "
            f"(character {exc.pos}).",
            line=exc.lineno,
            column=exc.colno,
        ) from None


def _bad(path: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"{path}: {message}", path=path)


def parse_trigger(raw: bytes, max_targets: int) -> TriggerRequest:
    """Check a trigger body. No body, or an audience with neither ``broadcast`` nor
    ``targets``, means the campaign's own audience (the same as ``broadcast: true``)."""
    body = parse_json(raw)
    if body is None:
        return TriggerRequest(mode="default")
    if not isinstance(body, dict):
        raise _bad("$", f"the body must be a JSON object, not {_kind(body)}")
    request = _audience(body, max_targets)
    send_at, local = _schedule(body)
    if send_at is None:
        return request
    return replace(request, send_at=send_at, in_local_time=local)


def _schedule(body: dict[str, Any]) -> tuple[datetime | None, bool]:
    """``send_at`` (ISO-8601 with an offset, at most MAX_AHEAD away) and ``in_local_time``."""
    local = body.get("in_local_time")
    if local is not None and not isinstance(local, bool):
        raise _bad("$.in_local_time", f"must be true or false, not {_kind(local)}")
    raw = body.get("send_at")
    if raw is None:
        if local:
            raise _bad("$.in_local_time", "needs send_at: the wall-clock time to send at")
        return None, False
    if not isinstance(raw, str):
        raise _bad("$.send_at", f"must be an ISO-8601 string, not {_kind(raw)}")
    try:
        at = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise _bad("$.send_at", f"{raw[:60]!r} is not an ISO-8601 date and time "
                   "(2026-12-01T09:00:00Z)") from None  # fmt: skip
    if at.tzinfo is None:
        raise _bad("$.send_at", f"{raw[:60]!r} has no UTC offset: add Z or +hh:mm (with "
                   "in_local_time it applies to devices of unknown timezone)")  # fmt: skip
    if at - clock.now() > MAX_AHEAD:
        raise _bad("$.send_at", f"is more than {MAX_AHEAD.days} days ahead")
    return at, bool(local)


def _audience(body: dict[str, Any], max_targets: int) -> TriggerRequest:
    properties = body.get("properties")
    if properties is None:
        properties = {}
    elif not isinstance(properties, dict):
        raise _bad(
            "$.properties", f"must be an object of trigger properties, not {_kind(properties)}"
        )
    limits.check_properties(properties)
    audience = body.get("audience")
    if audience is None:
        return TriggerRequest(mode="default", properties=properties)
    if not isinstance(audience, dict):
        raise _bad("$.audience", f"must be an object, not {_kind(audience)}")
    broadcast = audience.get("broadcast")
    if broadcast is not None and not isinstance(broadcast, bool):
        raise _bad("$.audience.broadcast", f"must be true or false, not {_kind(broadcast)}")
    raw_targets = audience.get("targets")
    if raw_targets is not None and not isinstance(raw_targets, list):
        raise _bad("$.audience.targets", f"must be an array, not {_kind(raw_targets)}")
    if broadcast:
        # Clix: with broadcast true, targets are ignored. Their shape is still not checked.
        return TriggerRequest(mode="broadcast", properties=properties)
    if raw_targets is None:
        return TriggerRequest(mode="default", properties=properties)
    if len(raw_targets) > max_targets:
        raise TooManyTargets(
            f"$.audience.targets has {len(raw_targets)} entries; at most {max_targets} are "
            "allowed per trigger. Split the call, or target by audience rules and broadcast.",
            path="$.audience.targets",
            limit=max_targets,
        )
    targets = [_target(i, t) for i, t in enumerate(raw_targets)]
    return TriggerRequest(mode="targets", targets=targets, properties=properties)


def _target(index: int, target: Any) -> dict[str, Any]:
    path = f"$.audience.targets[{index}]"
    if not isinstance(target, dict):
        raise _bad(path, f"must be an object, not {_kind(target)}")
    present = [k for k in TARGET_KEYS if target.get(k) is not None]
    if len(present) != 1:
        which = "both" if len(present) == 2 else "neither"
        raise _bad(path, f"must name exactly one of project_user_id or device_id ({which} given)")
    key = present[0]
    value = target[key]
    if not isinstance(value, str) or not value:
        raise _bad(f"{path}.{key}", f"must be a non-empty string, not {_kind(value)}")
    properties = target.get("properties")
    if properties is None:
        return {key: value}
    if not isinstance(properties, dict):
        raise _bad(f"{path}.properties", "must be an object of this recipient's properties, "
                   f"not {_kind(properties)}")  # fmt: skip
    limits.check_properties(properties, f"{path}.properties")
    return {key: value, "properties": properties} if properties else {key: value}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string" if value else "an empty string"
    if isinstance(value, list):
        return "an array"
    return "an object"
