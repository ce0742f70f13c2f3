"""Typed values: how a stored property or a rule value reads as each attribute type.

One set of functions serves ingestion (what gets indexed), rule checks at save time, trigger
values at trigger time, the SQL compiler's bound values and the reference evaluator, so that
all of them agree on what ``"3"``, ``"2024-05-01"`` or ``"3.2.0"`` means.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal

AttrType = Literal["string", "number", "boolean", "datetime", "version"]
VALUE_TEXT_MAX = 1024  # the indexed text form of a property value is cut at this length

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_NUMERIC_START = frozenset("0123456789+-.")  # what a number or an ISO date starts with
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
_VERSION = re.compile(
    r"^v?(\d{1,9})(?:\.(\d{1,9}))?(?:\.(\d{1,9}))?(?:\.(\d{1,9}))?"
    r"(?:-([0-9A-Za-z.-]{1,64}))?(?:\+[0-9A-Za-z.-]{1,64})?$"
)


class ValueTypeError(ValueError):
    """A value that cannot be read as the type a rule needs; ``expected`` says what would do."""

    def __init__(self, expected: str, value: Any) -> None:
        super().__init__(f"expected {expected}, got {describe(value)}")
        self.expected = expected


def describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value[:60]!r}"
    if isinstance(value, list):
        return "an array"
    return "an object"


def canonical_text(value: Any) -> str | None:
    """The text form used for string rules, so that the SDKs' string-typed values compare
    equal to numbers and booleans sent as JSON (``"3"`` equals ``3``, ``"true"`` ``true``).
    Objects and arrays have none: they are stored, but no rule reads them."""
    kind = type(value)  # exact types first: this runs for every property of every import
    if kind is str:
        return value[:VALUE_TEXT_MAX]  # type: ignore[no-any-return]
    if kind is bool or isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value[:VALUE_TEXT_MAX]
    return None


def parse_datetime(text: str) -> datetime | None:
    """An ISO-8601 instant (a date alone means its midnight UTC; no zone means UTC)."""
    if not _DATE.match(text):
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def canonical_number(value: Any) -> float | None:
    """The numeric form used for number and datetime rules: a number, a numeric string, or
    an ISO-8601 datetime string as unix seconds. None when the value has no numeric form."""
    if isinstance(value, str):
        text = value.strip()
        if not text or text[0] not in _NUMERIC_START:
            return None
        if _NUMBER.match(text):
            number = float(text)
            return number if math.isfinite(number) else None
        instant = parse_datetime(text)
        return None if instant is None else instant.timestamp()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def version_key(value: Any) -> str | None:
    """A sortable text form of a version: four zero-padded parts, then the pre-release
    (``3.2.0-beta`` sorts before ``3.2.0``). None when the value is not a version."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    return _version_key(str(value).strip())


@lru_cache(maxsize=4096)  # an app has few versions; every device import asks
def _version_key(text: str) -> str | None:
    match = _VERSION.match(text)
    if match is None:
        return None
    parts = ".".join(f"{int(p or 0):09d}" for p in match.groups()[:4])
    pre = match.group(5)
    return f"{parts}-{pre}" if pre else f"{parts}~"


def as_text(value: Any) -> str:
    if isinstance(value, list | dict) or value is None:
        raise ValueTypeError("a string", value)
    text = canonical_text(value)
    assert text is not None
    return text


def as_number(value: Any) -> float:
    if isinstance(value, str) and not _NUMBER.match(value.strip()):
        raise ValueTypeError("a number", value)
    number = canonical_number(value)
    if number is None:
        raise ValueTypeError("a number", value)
    return number


def as_instant(value: Any) -> float:
    """Unix seconds from an ISO-8601 string or a number of unix seconds."""
    if isinstance(value, str):
        instant = parse_datetime(value.strip())
        if instant is None:
            raise ValueTypeError("an ISO-8601 datetime such as '2026-05-01T09:00:00Z'", value)
        return instant.timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise ValueTypeError("an ISO-8601 datetime such as '2026-05-01T09:00:00Z'", value)


def as_days(value: Any) -> float:
    days = as_number(value)
    if days < 0:
        raise ValueTypeError("a number of days (0 or more)", value)
    return days


def as_version(value: Any) -> str:
    key = version_key(value)
    if key is None:
        raise ValueTypeError("a version such as '3.2.0'", value)
    return key
