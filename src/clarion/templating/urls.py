"""URL fields are checked after rendering: a push must never open a half-rendered or
hostile link (``javascript:``, ``file:``, an unrendered ``{{``)."""

from __future__ import annotations

import re
from collections.abc import Collection
from urllib.parse import urlsplit

ALWAYS_ALLOWED = ("https",)
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*$")
_BAD_CHARACTERS = re.compile(r"[\s<>\"{}|\\^`]")


def problem(url: str, schemes: Collection[str]) -> str | None:
    """Why ``url`` may not be sent (None: it may). An empty field is fine: it is optional.
    ``schemes``: the project's own deep-link schemes, allowed besides https."""
    if not url:
        return None
    allowed = sorted({*ALWAYS_ALLOWED, *schemes})
    if _BAD_CHARACTERS.search(url):
        return f'{url[:80]!r} is not a well-formed URL (spaces or characters such as {{ < > "'
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        return f"{url[:80]!r} is not a well-formed URL ({exc})"
    scheme = parts.scheme.lower()
    if not scheme:
        return f"{url[:80]!r} has no scheme; use one of: {', '.join(allowed)}"
    if scheme not in allowed:
        return f"scheme {scheme!r} is not allowed; use one of: {', '.join(allowed)}"
    if scheme in ("https", "http") and not parts.hostname:
        return f"{url[:80]!r} has no host"
    return None


def static_problem(template: str, schemes: Collection[str]) -> str | None:
    """What can be known before rendering: a URL without markup is checked whole; one with
    markup, by its scheme when the scheme is written out (``myshop://orders/{{ ... }}``)."""
    if "{" not in template:
        return problem(template, schemes)
    fixed = template.split("{", 1)[0]
    if ":" not in fixed:
        return None  # the scheme comes from the data: checked at send time
    return problem(fixed.split(":", 1)[0] + "://x", schemes)


def valid_scheme(scheme: str) -> bool:
    return bool(_SCHEME.match(scheme)) and scheme not in ("javascript", "data", "file", "vbscript")
