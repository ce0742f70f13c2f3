"""Idempotency-Key (the IETF draft): a retried request is answered with the first answer."""

from clarion.idempotency.service import (
    HEADER,
    Claimed,
    Replay,
    begin,
    checked_key,
    complete,
    fingerprint,
    release,
)

__all__ = ["HEADER", "Claimed", "Replay", "begin", "checked_key", "complete", "fingerprint",
           "release"]  # fmt: skip
