"""User properties sent by the SDKs: typed values that travel as strings (mostly)."""

from __future__ import annotations

import math
import re
from datetime import UTC
from typing import Any

from sqlalchemy.orm import Session

from clarion.audience.values import canonical_text, describe, parse_datetime
from clarion.errors import InvalidRequest
from clarion.users import service
from clarion.users.schemas import SdkProperty, SdkPropertyOut

TYPES = ("STRING", "NUMBER", "BOOLEAN", "DATETIME")
_INT = re.compile(r"^[+-]?\d{1,18}$")
_FLOAT = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


class InvalidProperty(InvalidRequest):
    code = "invalid_property"


def _type(prop: SdkProperty, path: str) -> str:
    short = prop.type.upper().removeprefix("USER_PROPERTY_TYPE_")
    if short not in TYPES:
        raise InvalidProperty(
            f"{path}.type: property {prop.name!r} has unknown type {prop.type!r}; use one of "
            + ", ".join(f"USER_PROPERTY_TYPE_{t}" for t in TYPES),
            path=f"{path}.type",
            property=prop.name,
        )
    return short


def read(prop: SdkProperty, path: str) -> tuple[str, Any]:
    """(type, typed value) of one SDK property; a value that does not parse as its declared
    type is refused, naming the property."""
    kind = _type(prop, path)
    raw = prop.value if prop.value is not None else prop.value_string
    if raw is None:
        raise InvalidProperty(
            f"{path}: property {prop.name!r} has no value (send 'value' or 'value_string')",
            path=path,
            property=prop.name,
        )
    value = typed_value(kind, raw)
    if value is None:
        raise InvalidProperty(
            f"{path}.value: property {prop.name!r} is declared USER_PROPERTY_TYPE_{kind} but "
            f"its value, {describe(raw)}, is not a {kind.lower()}"
            + (" (ISO-8601, e.g. 2026-05-01T09:00:00Z)" if kind == "DATETIME" else ""),
            path=f"{path}.value",
            property=prop.name,
        )
    return kind, value


def typed_value(kind: str, raw: Any) -> Any:
    if isinstance(raw, dict | list):
        return None
    if kind == "STRING":
        return canonical_text(raw)
    if kind == "BOOLEAN":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        return {"true": True, "false": False}.get(text)
    if kind == "NUMBER":
        if isinstance(raw, bool):
            return None
        if isinstance(raw, int | float):
            return raw
        text = str(raw).strip()
        if _INT.match(text):
            return int(text)
        number = float(text) if _FLOAT.match(text) else None
        return number if number is not None and math.isfinite(number) else None
    instant = parse_datetime(str(raw).strip()) if isinstance(raw, str) else None
    if instant is None:
        return None
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


def set_properties(
    session: Session, project_id: str, device_id: str, props: list[SdkProperty]
) -> list[SdkPropertyOut]:
    """Check every property first (a bad one changes nothing), then merge them into the
    device's user."""
    typed = [read(p, f"$.properties[{i}]") for i, p in enumerate(props)]
    _device, user = service.device_user(session, project_id, device_id)
    service.set_properties(
        session, user, {p.name: v for p, (_, v) in zip(props, typed, strict=True)}
    )
    session.flush()
    return [
        SdkPropertyOut(
            name=p.name,
            type=f"USER_PROPERTY_TYPE_{kind}",
            value=value,
            value_string=canonical_text(value) or "",
        )
        for p, (kind, value) in zip(props, typed, strict=True)
    ]


def remove_properties(session: Session, project_id: str, device_id: str, names: list[str]) -> None:
    _device, user = service.device_user(session, project_id, device_id)
    service.set_properties(session, user, dict.fromkeys(names))
    session.flush()


def names_from_query(names: list[str], property_names: list[str]) -> list[str]:
    """``?names=a&names=b`` (Android, iOS) or ``?property_names=a,b`` (React Native)."""
    out = [n for n in names if n]
    for joined in property_names:
        out += [n.strip() for n in joined.split(",") if n.strip()]
    if not out:
        raise InvalidRequest(
            "Name the properties to remove: ?names=a&names=b (or ?property_names=a,b).",
            path="names",
        )
    return list(dict.fromkeys(out))
