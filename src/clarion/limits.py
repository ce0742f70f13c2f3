"""Resource limits on property objects (OWASP API4), configured once per process.

Trigger properties, user properties and event properties are checked for the number of keys
per object, the nesting depth of objects and arrays, and the length of strings (keys
included). Each limit is a setting (CLARION_MAX_PROPERTIES, CLARION_MAX_PROPERTY_DEPTH,
CLARION_MAX_STRING_LENGTH), and a breach is a 400 ``limit_exceeded`` whose message names the
JSON path, the limit and the setting. (The body size, targets per trigger and the
``messages:send`` batch have their own limits and answers.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clarion.errors import InvalidRequest


@dataclass
class Limits:
    max_properties: int = 200
    max_depth: int = 8
    max_string: int = 10_000


current = Limits()


class LimitExceeded(InvalidRequest):
    code = "limit_exceeded"


def configure(max_properties: int, max_depth: int, max_string: int) -> None:
    current.max_properties = max_properties
    current.max_depth = max_depth
    current.max_string = max_string


def check_properties(value: Any, path: str = "$.properties") -> None:
    """Raise LimitExceeded at the first breach, naming where and which limit. Every request
    with properties runs this: a walk that builds no paths says whether all is well, and
    only a breach is walked again to name it."""
    if not _within(value, 1, current):
        _walk(value, path, 1)


def _within(value: Any, depth: int, limits: Limits) -> bool:
    if isinstance(value, str):
        return len(value) <= limits.max_string
    if isinstance(value, dict):
        if depth > limits.max_depth or (depth == 1 and len(value) > limits.max_properties):
            return False
        return all(len(k) <= limits.max_string and _within(v, depth + 1, limits)
                   for k, v in value.items())  # fmt: skip
    if isinstance(value, list):
        return depth <= limits.max_depth and all(_within(v, depth + 1, limits) for v in value)
    return True


def _walk(value: Any, path: str, depth: int) -> None:
    limits = current
    if isinstance(value, str):
        if len(value) > limits.max_string:
            _breach(path, f"is a string of {len(value):,} characters; at most "
                    f"{limits.max_string:,} are allowed", "CLARION_MAX_STRING_LENGTH",
                    limits.max_string)  # fmt: skip
        return
    if not isinstance(value, dict | list):
        return
    if depth > limits.max_depth:
        _breach(path, f"is nested {depth} levels deep; at most {limits.max_depth} are allowed",
                "CLARION_MAX_PROPERTY_DEPTH", limits.max_depth)  # fmt: skip
    if isinstance(value, dict):
        if depth == 1 and len(value) > limits.max_properties:
            _breach(path, f"has {len(value):,} keys; at most {limits.max_properties:,} are "
                    "allowed", "CLARION_MAX_PROPERTIES", limits.max_properties)  # fmt: skip
        for key, item in value.items():
            if len(key) > limits.max_string:
                _breach(path, f"has a key of {len(key):,} characters; at most "
                        f"{limits.max_string:,} are allowed", "CLARION_MAX_STRING_LENGTH",
                        limits.max_string)  # fmt: skip
            _walk(item, f"{path}.{key}", depth + 1)
    else:
        for i, item in enumerate(value):
            _walk(item, f"{path}[{i}]", depth + 1)


def _breach(path: str, what: str, setting: str, limit: int) -> None:
    raise LimitExceeded(f"{path} {what} ({setting}); send less.", path=path, limit=limit,
                        setting=setting)  # fmt: skip


def refuse_nul(raw: bytes, parsed: Any) -> None:
    """Refuse text with NUL characters anywhere in a parsed JSON body (PostgreSQL cannot
    store them; SQLite refuses them too, for one behaviour). JSON can only spell NUL as an
    escape, so a body without one is passed without a walk."""
    if b"\\u0000" in raw:
        _nul(parsed, "$")


def _nul(value: Any, path: str) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidRequest(f"{path}: text may not contain NUL (\\u0000) characters",
                                 code="invalid_text", path=path)  # fmt: skip
    elif isinstance(value, dict):
        for key, item in value.items():
            _nul(key, path)
            _nul(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _nul(item, f"{path}[{i}]")
