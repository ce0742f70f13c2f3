"""Engine and session factory. SQLite gets WAL and explicit BEGIN IMMEDIATE for writers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from clarion.storage.checkpoint import Checkpointer
from clarion.storage.write_lock import WriteLock

WRITE = {"clarion_write": True}
TRUSTED_WRITE = {**WRITE, "clarion_trusted": True}
# A new SQLite file gets 8 KiB pages rather than SQLite's 4 KiB: half the pages, log frames
# and B-tree splits per row written. A 1,000,000-user import took 43 s instead of 49-53 s,
# and streaming an audience read 1.1x as many rows per second. An existing file keeps its
# page size (in WAL mode it cannot change).
PAGE_SIZE = 8192


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def make_engine(url: str, lock_timeout: float = 30.0, auto_checkpoint: bool = True) -> Engine:
    """Create the engine for ``url``; SQLite files are put in WAL mode. A statement waits
    at most ``lock_timeout`` seconds for a lock (SQLite's busy timeout, PostgreSQL's
    lock_timeout), then fails: the API answers 503 rather than hang. ``auto_checkpoint``
    False: SQLite's commits never checkpoint the log (a Checkpointer does)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(
            url,
            pool_size=10,
            max_overflow=20,
            pool_pre_ping=True,
            json_serializer=_json,
            json_deserializer=orjson.loads,  # the driver's loader (stdlib json: 2-3x the time)
            connect_args={"options": f"-c lock_timeout={round(lock_timeout * 1000)}"},
        )
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"timeout": lock_timeout, "check_same_thread": False},
        pool_size=20,
        max_overflow=20,
        json_serializer=_json,
        json_deserializer=orjson.loads,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite so that we can say BEGIN IMMEDIATE.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA page_size={PAGE_SIZE}")  # taken only by a new, empty file
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={round(lock_timeout * 1000)}")
        if not auto_checkpoint:
            cur.execute("PRAGMA wal_autocheckpoint=0")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers take the write lock up front: a deferred transaction that later upgrades
        # to a writer fails with SQLITE_BUSY instead of waiting on the busy handler.
        options = conn.get_execution_options()
        # Foreign keys are checked unless the writer vouches for its rows (the bulk importer
        # inserts users and their rows together: the checks were a quarter of its inserts).
        # The setting belongs to the connection and only changes outside a transaction.
        unchecked = options.get("clarion_trusted", False)
        info = conn.connection.info
        if info.get("clarion_unchecked", False) != unchecked:
            conn.exec_driver_sql(f"PRAGMA foreign_keys={'OFF' if unchecked else 'ON'}")
            info["clarion_unchecked"] = unchecked
        conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get("clarion_write") else "BEGIN")

    return engine


class Database:
    """Owns the engine and hands out sessions. Services never commit; these scopes do."""

    def __init__(
        self, url: str, lock_timeout: float = 30.0, *, background_checkpoints: bool = False
    ) -> None:
        """``background_checkpoints``: a SQLite file's log is checkpointed on a thread of its
        own, not in the commits (see storage.checkpoint); for long-running processes that
        write a lot, the server and the worker."""
        self.url = url
        parsed = make_url(url)
        path = parsed.database if parsed.get_backend_name() == "sqlite" else None
        self.checkpointer: Checkpointer | None = None
        if background_checkpoints and path and path != ":memory:" and "mode=memory" not in url:
            self.checkpointer = Checkpointer(path)
        self.engine = make_engine(url, lock_timeout, auto_checkpoint=self.checkpointer is None)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._factory = sessionmaker(self.engine, expire_on_commit=False)
        self._write_lock: WriteLock | None = None
        if self.is_sqlite:
            memory = not path or path == ":memory:" or "mode=memory" in url
            self._write_lock = WriteLock(None if memory else path)

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._factory() as session:
            yield session

    @contextmanager
    def write(self, trusted: bool = False) -> Iterator[Session]:
        """A session whose transaction takes the write lock at once and commits on success.
        ``trusted``: the writer guarantees its rows' references (SQLite then skips the
        foreign-key checks; PostgreSQL checks them as always)."""
        lock = self._write_lock
        if lock is not None:
            lock.acquire()
        try:
            with self._factory() as session:
                session.connection(execution_options=TRUSTED_WRITE if trusted else WRITE)
                try:
                    yield session
                    session.commit()
                except BaseException:
                    session.rollback()
                    raise
        finally:
            if lock is not None:
                lock.release()
        if self.checkpointer is not None:
            self.checkpointer.wrote()

    def dispose(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.close()
        self.engine.dispose()
        if self._write_lock is not None:
            self._write_lock.close()
