"""API key format, scopes and hashing.

A key looks like ``clx_sk_<43 urlsafe chars><6 checksum chars>`` (secret) or ``clx_pk_...``
(public). The prefix makes a leaked key easy to spot, and the checksum (CRC32 of everything
before it, in base 62) lets a scanner tell a real Clarion key from look-alike text offline,
without asking the server: ``looks_like_key``. Keys made before the checksum existed (no
suffix) still authenticate.

Only the SHA-256 of the key is stored; keys are 256-bit random, so a fast hash is the right
one (nothing to brute-force), and comparison of the stored hash is constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import zlib
from collections.abc import Iterable
from typing import Literal

KeyKind = Literal["secret", "public"]
Scope = Literal["trigger", "ingest", "read", "admin"]
PREFIXES: dict[KeyKind, str] = {"secret": "clx_sk_", "public": "clx_pk_"}
SCOPES: tuple[Scope, ...] = ("trigger", "ingest", "read", "admin")
SCOPE_HELP = {
    "trigger": "trigger campaigns and dry-run them, send messages, follow its triggers",
    "ingest": "write users, devices, properties and events (a public key has only this)",
    "read": "read campaigns, triggers, message logs, providers and webhooks",
    "admin": "change campaigns, providers, webhooks and keys; read the audit log",
}
# Least privilege: a secret key made without naming scopes may trigger, and no more.
DEFAULT_SECRET_SCOPES: tuple[Scope, ...] = ("trigger",)
PUBLIC_SCOPES: tuple[Scope, ...] = ("ingest",)
BODY_CHARS = 43  # secrets.token_urlsafe(32)
CHECKSUM_CHARS = 6
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
PATTERN = re.compile(
    rf"(?<![A-Za-z0-9_-])clx_[sp]k_[A-Za-z0-9_-]{{{BODY_CHARS}}}[0-9A-Za-z]{{{CHECKSUM_CHARS}}}"
    r"(?![A-Za-z0-9_-])"
)


def _checksum(text: str) -> str:
    value = zlib.crc32(text.encode("ascii"))
    digits = []
    for _ in range(CHECKSUM_CHARS):
        value, digit = divmod(value, 62)
        digits.append(_BASE62[digit])
    return "".join(reversed(digits))


def generate_key(kind: KeyKind) -> str:
    head = PREFIXES[kind] + secrets.token_urlsafe(32)
    return head + _checksum(head)


def looks_like_key(text: str) -> bool:
    """Whether ``text`` is exactly a Clarion key with a valid checksum (offline check)."""
    if not PATTERN.fullmatch(text):
        return False
    head, check = text[:-CHECKSUM_CHARS], text[-CHECKSUM_CHARS:]
    return hmac.compare_digest(_checksum(head), check)


def find_keys(text: str) -> list[str]:
    """Every Clarion key in ``text`` whose checksum holds (a leak scanner's core)."""
    return [m.group(0) for m in PATTERN.finditer(text) if looks_like_key(m.group(0))]


def checked_scopes(scopes: Iterable[str]) -> list[Scope]:
    """The scopes named, in canonical order; an unknown name raises ValueError naming it."""
    wanted = set()
    for scope in scopes:
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}: use {', '.join(SCOPES)}")
        wanted.add(scope)
    return [s for s in SCOPES if s in wanted]


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def display_prefix(key: str) -> str:
    """What listings show: the kind prefix and four characters, never enough to use."""
    return key[:11] + "…"


def hashes_match(stored_hash: str, presented_key: str) -> bool:
    return hmac.compare_digest(stored_hash, hash_key(presented_key))
