"""API key format and hashing.

A key looks like ``clx_sk_<43 urlsafe chars>`` (secret) or ``clx_pk_...`` (public): the prefix
makes a leaked key easy to spot. Only the SHA-256 of the key is stored; keys are 256-bit
random, so a fast hash is the right one (nothing to brute-force), and comparison of the stored
hash is constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Literal

KeyKind = Literal["secret", "public"]
PREFIXES: dict[KeyKind, str] = {"secret": "clx_sk_", "public": "clx_pk_"}


def generate_key(kind: KeyKind) -> str:
    return PREFIXES[kind] + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def display_prefix(key: str) -> str:
    """What listings show: the kind prefix and four characters, never enough to use."""
    return key[:11] + "…"


def hashes_match(stored_hash: str, presented_key: str) -> bool:
    return hmac.compare_digest(stored_hash, hash_key(presented_key))
