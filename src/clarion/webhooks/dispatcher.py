"""The webhook dispatcher: sends due deliveries from the outbox, logs every attempt, and
schedules the next one with exponential backoff (5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h,
4 h, then every 8 h, each ±20%) until it is answered 2xx or the retry window (24 h by default)
has passed. A claimed delivery is leased: if this process dies mid-send it is sent again,
with the same ``webhook-id``, so receivers can drop the duplicate."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from clarion.credentials.crypto import Box
from clarion.storage.db import Database
from clarion.storage.models import utcnow
from clarion.webhooks import netguard, repository, sender

log = logging.getLogger("clarion.webhooks")
BACKOFF = (5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800)  # seconds, after attempt 1, 2, ...
LEASE_SECONDS = 60.0


def backoff(attempt: int) -> float:
    """Seconds before the next try after ``attempt`` failed tries (jittered ±20%)."""
    base = BACKOFF[min(attempt, len(BACKOFF)) - 1]
    return base * random.uniform(0.8, 1.2)


class WebhookDispatcher:
    def __init__(
        self,
        db: Database,
        box: Box,
        *,
        allowed: Sequence[netguard.Network],
        retry_hours: float,
        concurrency: int = 8,
        batch: int = 64,
        poll_interval: float = 0.5,
    ) -> None:
        self.db = db
        self.box = box
        self.allowed = list(allowed)
        self.window = timedelta(hours=retry_hours)
        self.batch = batch
        self.poll_interval = poll_interval
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="clarion-webhook")
        self._http = sender.client()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="clarion-webhooks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def notify(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._http.close()

    def run_until_idle(self) -> None:
        """Send everything due now, on the calling thread (for CLIs and tests)."""
        while self.run_once():
            pass

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.run_once()
            except Exception:
                log.exception("webhook dispatcher error")
                busy = 0
            if not busy:
                self._wake.wait(self.poll_interval)
                self._wake.clear()

    def run_once(self) -> int:
        with self.db.read() as session:  # most polls find nothing: no write lock for those
            if not repository.any_due(session):
                return 0
        with self.db.write() as session:
            claimed = repository.claim_due(session, self.batch, LEASE_SECONDS)
        if not claimed:
            return 0
        answers = list(self._pool.map(self._send, claimed))
        now = utcnow()
        attempts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        for row, answer in zip(claimed, answers, strict=True):
            n = row.attempts + 1
            attempts.append({"delivery_id": row.id, "attempt": n, "at": now,
                             "status_code": answer.status_code, "error": answer.error,
                             "duration_ms": answer.duration_ms})  # fmt: skip
            update = {"did": row.id, "n": n, "next_at": now, "delivered": None}
            if answer.ok:
                update.update(new_status="delivered", delivered=now)
            else:
                delay = max(backoff(n), answer.retry_after or 0.0)
                next_at = now + timedelta(seconds=delay)
                if next_at - row.created_at > self.window:
                    update["new_status"] = "failed"
                    log.warning("webhook %s (%s) given up after %d attempts: %s",
                                row.id, row.event_type, n, answer.error)  # fmt: skip
                else:
                    update.update(new_status="pending", next_at=next_at)
            updates.append(update)
        with self.db.write() as session:
            repository.settle(session, attempts, updates)
        return len(claimed)

    def _send(self, row: Any) -> sender.Answer:
        secret = self.box.open(row.sealed_secret).decode()
        return sender.post(
            self._http,
            row.url,
            row.payload.encode(),
            secret=secret,
            msg_id=row.id,
            headers=dict(row.headers or {}),
            allowed=self.allowed,
        )
