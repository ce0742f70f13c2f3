"""Dedupe: one send per ``dedupe_key`` (an order id plus the campaign, say) for a while.

At-least-once job runners and replays call the trigger function twice; the second call must
not send again. A store keeps each key for a TTL (24 h by default):

- ``claim(key, ttl)`` before sending: None when this call may send, else the value stored by
  the first call (its trigger id, or PENDING while that call is still in flight);
- ``complete(key, trigger_id, ttl)`` after a successful send;
- ``release(key)`` after a failed one, so that a later retry can send.

Three stores: in memory (one process), Redis (``SET NX`` with expiry; shared), and SQL through
SQLAlchemy (any database the service already has; shared).
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

DEFAULT_TTL = 24 * 3600.0
PENDING = "pending"


class DedupeStore(Protocol):
    def claim(self, key: str, ttl: float) -> str | None: ...
    def complete(self, key: str, trigger_id: str, ttl: float) -> None: ...
    def release(self, key: str) -> None: ...


class MemoryDedupe:
    """In-process; lost on restart (use Redis or SQL across processes)."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._items: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def claim(self, key: str, ttl: float) -> str | None:
        with self._lock:
            now = self._clock()
            item = self._items.get(key)
            if item is not None and item[0] > now:
                return item[1]
            self._items[key] = (now + ttl, PENDING)
            if len(self._items) > 100_000:  # forget the expired now and then
                self._items = {k: v for k, v in self._items.items() if v[0] > now}
            return None

    def complete(self, key: str, trigger_id: str, ttl: float) -> None:
        with self._lock:
            self._items[key] = (self._clock() + ttl, trigger_id)

    def release(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)


class RedisDedupe:
    """``SET key pending NX EX ttl``: one caller wins; the others read the first call's
    trigger id. ``client``: a redis.Redis (``pip install clarion-client[redis]``)."""

    _RELEASE = (
        "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end "
        "return 0"
    )

    def __init__(self, client: Any, prefix: str = "clarion:dedupe:") -> None:
        self.client = client
        self.prefix = prefix
        self._token = f"{PENDING}:{uuid.uuid4()}"  # ours: release only what we claimed

    def claim(self, key: str, ttl: float) -> str | None:
        name = self.prefix + key
        if self.client.set(name, self._token, nx=True, ex=max(1, int(ttl))):
            return None
        value = self.client.get(name)
        if value is None:  # expired between the two calls: try once more
            return (
                None
                if self.client.set(name, self._token, nx=True, ex=max(1, int(ttl)))
                else PENDING
            )
        text = value.decode() if isinstance(value, bytes) else str(value)
        return PENDING if text.startswith(PENDING) else text

    def complete(self, key: str, trigger_id: str, ttl: float) -> None:
        self.client.set(self.prefix + key, trigger_id, ex=max(1, int(ttl)))

    def release(self, key: str) -> None:
        self.client.eval(self._RELEASE, 1, self.prefix + key, self._token)


class SQLDedupe:
    """A table ``clarion_client_dedupe`` (created if missing) in any SQLAlchemy database:
    the primary key decides who sends (``pip install clarion-client[sql]``)."""

    def __init__(self, engine: Engine, table: str = "clarion_client_dedupe") -> None:
        from sqlalchemy import Column, Float, MetaData, String, Table

        self.engine = engine
        self.table = Table(
            table,
            MetaData(),
            Column("key", String(255), primary_key=True),
            Column("value", String(255), nullable=False),
            Column("expires_at", Float, nullable=False),
        )
        self.table.create(engine, checkfirst=True)

    def claim(self, key: str, ttl: float) -> str | None:
        from sqlalchemy import delete, insert, select
        from sqlalchemy.exc import IntegrityError

        t = self.table
        now = time.time()
        try:
            with self.engine.begin() as conn:
                conn.execute(delete(t).where(t.c.key == key, t.c.expires_at <= now))
                conn.execute(insert(t).values(key=key, value=PENDING, expires_at=now + ttl))
            return None
        except IntegrityError:
            with self.engine.connect() as conn:
                value = conn.execute(select(t.c.value).where(t.c.key == key)).scalar()
            return PENDING if value is None else str(value)

    def complete(self, key: str, trigger_id: str, ttl: float) -> None:
        from sqlalchemy import update

        t = self.table
        with self.engine.begin() as conn:
            conn.execute(
                update(t)
                .where(t.c.key == key)
                .values(value=trigger_id, expires_at=time.time() + ttl)
            )

    def release(self, key: str) -> None:
        from sqlalchemy import delete

        t = self.table
        with self.engine.begin() as conn:
            conn.execute(delete(t).where(t.c.key == key, t.c.value == PENDING))
