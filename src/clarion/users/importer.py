"""Bulk import of users, their properties and devices from JSONL or CSV.

A row is ``{"project_user_id", "properties": {...}, "devices": [{...SDK device...}]}``
(JSONL), or a CSV row: ``project_user_id``, property columns (``name`` or ``name:type`` with
type string, number, boolean or datetime) and ``device_<field>`` columns for one device.

Good rows are written in batches (one transaction each); a bad row is reported with its line
number and skipped. Running the same file again changes nothing: users are matched by
``project_user_id``, properties replaced key by key, devices matched by id.
"""

from __future__ import annotations

import csv
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, cast

import orjson
from pydantic import ValidationError
from sqlalchemy import Table, bindparam, delete, func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.schema import DropIndex

from clarion.audience.values import canonical_number, canonical_text
from clarion.ids import uuid7_batch
from clarion.storage import bulk
from clarion.storage.db import Database
from clarion.storage.migrate import restore_indexes
from clarion.storage.models import VALUE_INDEXES, Device, User, UserProperty, utcnow
from clarion.users.schemas import PROPERTY_KEY_MAX, device_attributes
from clarion.users.sdk_properties import typed_value
from clarion.users.service import device_columns

U = cast(Table, User.__table__)
D = cast(Table, Device.__table__)
P = cast(Table, UserProperty.__table__)
Format = Literal["jsonl", "csv"]
IMPORT_CACHE_KB = 1024 * 1024  # SQLite page cache of the importing connection: 1 GiB
IMPORT_MMAP_BYTES = 8 << 30
IMPORT_CHECKPOINT_PAGES = 65_536  # of write-ahead log: 512 MiB with 8 KiB pages (storage.db)
BULK_LOAD_MIN = 50_000  # rows; below this, keeping the indexes up to date is cheaper
MAX_KEPT_REJECTS = 10_000  # a wholly bad file must not fill memory with its complaints
CSV_TYPES = {"string": "STRING", "number": "NUMBER", "boolean": "BOOLEAN", "datetime": "DATETIME"}

_UPDATE_USER = (
    update(U)
    .where(U.c.id == bindparam("uid"))
    .values(properties=bindparam("props"), updated_at=bindparam("now"))
)
_DELETE_PROPS = delete(P).where(P.c.user_id == bindparam("uid"), P.c.key == bindparam("k"))
# The device columns rules read (users.service.device_columns), in this module's order.
_DEVICE_COLUMNS = ("platform", "locale_region", "locale_language", "timezone",
                   "is_push_permission_granted", "push_token", "push_token_type",
                   "app_version", "app_version_key", "sdk_type")  # fmt: skip
_DEVICE_INSERT = ("project_id", "id", "user_id", "attributes", *_DEVICE_COLUMNS,
                  "created_at", "updated_at")  # fmt: skip
_DEVICE_FIELDS = ("user_id", "attributes", *_DEVICE_COLUMNS, "updated_at")
_UPDATE_DEVICE = (
    update(D)
    .where(D.c.project_id == bindparam("pid"), D.c.id == bindparam("did"))
    .values({f: bindparam(f"v_{f}") for f in _DEVICE_FIELDS})
)
_USER_INSERT = ("id", "project_id", "project_user_id", "properties", "created_at", "updated_at")
_PROPERTY_INSERT = ("user_id", "key", "project_id", "value_text", "value_num")


@dataclass(slots=True)
class Row:
    line: int
    project_user_id: str
    properties: dict[str, Any]
    devices: list[dict[str, Any]]  # each DeviceIn's dump (users.schemas.device_attributes)


@dataclass
class Report:
    rows: int = 0
    users_created: int = 0
    users_updated: int = 0
    devices: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # the first MAX_KEPT
    rejected_total: int = 0
    seconds: float = 0.0
    bulk_load: bool = False  # value indexes dropped for the load and built at the end
    index_seconds: float = 0.0  # of ``seconds``, building them

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


class BadRow(ValueError):
    pass


def _check(line: int, data: Any) -> Row:
    if not isinstance(data, dict):
        raise BadRow("a row must be a JSON object")
    puid = data.get("project_user_id")
    if not isinstance(puid, str) or not 0 < len(puid) <= 255:
        raise BadRow("project_user_id must be a string of 1 to 255 characters")
    properties = data.get("properties") or {}
    if not isinstance(properties, dict):
        raise BadRow("properties must be an object")
    for key in properties:
        if not 0 < len(key) <= PROPERTY_KEY_MAX:
            raise BadRow(f"property names must be 1 to {PROPERTY_KEY_MAX} characters: {key!r}")
    raw_devices = data.get("devices") or []
    if not isinstance(raw_devices, list):
        raise BadRow("devices must be an array")
    devices = []
    for i, device in enumerate(raw_devices):
        try:
            devices.append(device_attributes(device))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise BadRow(f"devices[{i}].{where}: {first['msg']}") from None
    return Row(line, puid, properties, devices)


class Source:
    """A JSONL or CSV file as numbered records: iterating yields each non-blank record with
    its line number (a CSV record's number counts records, the header being line 1), and
    ``parse`` turns one into a Row or a rejection. Splitting the two lets an import worker
    (users.file_import) read the whole file but parse only its own share."""

    def __init__(self, path: Path, fmt: Format | None = None) -> None:
        self.path = path
        self.fmt: Format = fmt or ("csv" if path.suffix.lower() == ".csv" else "jsonl")
        self._columns: list[tuple[str, str, str | None]] = []  # CSV: (kind, name, type)

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        if self.fmt == "csv":
            with self.path.open(newline="", encoding="utf-8") as fh:
                yield from self._csv_records(csv.reader(fh))
        else:
            with self.path.open("rb") as fh:
                for number, raw in enumerate(fh, start=1):
                    if raw.strip():
                        yield number, raw

    def _csv_records(self, reader: Iterator[list[str]]) -> Iterator[tuple[int, list[str]]]:
        header = next(reader, None)
        if header is None:
            return
        self._columns = []
        for name in header:
            name = name.strip()
            if name == "project_user_id":
                self._columns.append(("id", name, None))
            elif name.startswith("device_"):
                self._columns.append(("device", name.removeprefix("device_"), None))
            else:
                prop, _, type_ = name.partition(":")
                kind = CSV_TYPES.get(type_.strip().lower() or "string")
                self._columns.append(("property", prop, kind))
        for number, cells in enumerate(reader, start=2):
            if any(c.strip() for c in cells):
                yield number, cells

    def parse(self, number: int, raw: Any) -> Row | tuple[int, str]:
        try:
            if self.fmt == "csv":
                return _check(number, _csv_row(self._columns, raw))
            return _check(number, orjson.loads(raw))
        except orjson.JSONDecodeError as exc:
            return number, f"not valid JSON: {exc.msg} (column {exc.colno})"
        except BadRow as exc:
            return number, str(exc)


def _csv_row(columns: list[tuple[str, str, str | None]], cells: list[str]) -> dict[str, Any]:
    if len(cells) != len(columns):
        raise BadRow(f"{len(cells)} cells for {len(columns)} columns")
    row: dict[str, Any] = {"properties": {}}
    device: dict[str, Any] = {}
    for (kind, name, type_), cell in zip(columns, cells, strict=True):
        if cell == "":
            continue
        if kind == "id":
            row["project_user_id"] = cell
        elif kind == "device":
            device[name] = cell.lower() in ("true", "1") if name.startswith("is_") else cell
        else:
            if type_ is None:
                raise BadRow(f"column {name!r} has an unknown type; use one of "
                             f"{', '.join(CSV_TYPES)}")  # fmt: skip
            value = typed_value(type_, cell)
            if value is None:
                raise BadRow(f"{name}: {cell!r} is not a {type_.lower()}")
            row["properties"][name] = value
    if device:
        row["devices"] = [device]
    return row


def read_file(path: Path, fmt: Format | None = None) -> Iterator[Row | tuple[int, str]]:
    source = Source(path, fmt)
    for number, raw in source:
        yield source.parse(number, raw)


@dataclass(slots=True)
class Prepared:
    """One batch, with everything that needs no database worked out ahead of the write:
    each row as a new user (a fresh id, its property rows and device rows as the driver
    takes them). The write re-keys the few rows whose user already exists."""

    rows: list[Row]
    users: list[tuple[Any, ...]]  # per row: _USER_INSERT values
    indexed: list[list[tuple[Any, ...]]]  # per row: _PROPERTY_INSERT values
    devices: list[list[tuple[Any, ...]]]  # per row: _DEVICE_INSERT values


@dataclass(slots=True)
class Stamp:
    """What every row of an import shares, in the driver's form."""

    project_id: str
    now: datetime
    stamp: Any
    as_json: Callable[[Any], Any]


def _prepare(rows: list[Row], fixed: Stamp) -> Prepared:
    pid, stamp, as_json = fixed.project_id, fixed.stamp, fixed.as_json
    uids = uuid7_batch(len(rows))
    users = []
    indexed = []
    devices = []
    for row, uid in zip(rows, uids, strict=True):
        clean = {k: v for k, v in row.properties.items() if v is not None}
        users.append((uid, pid, row.project_user_id, as_json(clean), stamp, stamp))
        entries = []
        for key, value in row.properties.items():
            text = canonical_text(value)
            if text is not None:
                entries.append((uid, key, pid, text, canonical_number(value)))
        indexed.append(entries)
        columns = []
        for device in row.devices:
            values = device_columns(device)
            columns.append((pid, device["id"], uid, as_json(device),
                            *(values[c] for c in _DEVICE_COLUMNS), stamp, stamp))  # fmt: skip
        devices.append(columns)
    return Prepared(rows, users, indexed, devices)


def batches(
    rows: Iterable[Row | tuple[int, str]], batch_size: int, report: Report, fixed: Stamp
) -> Iterator[Prepared]:
    """The good rows, prepared in batches of at most ``batch_size`` users (a user named twice
    starts a new batch: the later row is written after the earlier); bad rows go to
    ``report``."""
    batch: dict[str, Row] = {}
    for item in rows:
        if isinstance(item, tuple):
            report.rejected_total += 1
            if len(report.rejected) < MAX_KEPT_REJECTS:
                report.rejected.append(item)
            continue
        if item.project_user_id in batch or len(batch) >= batch_size:
            yield _prepare(list(batch.values()), fixed)
            batch = {}
        batch[item.project_user_id] = item
    if batch:
        yield _prepare(list(batch.values()), fixed)


def _ahead(prepared: Iterator[Prepared], depth: int = 2) -> Iterator[Prepared]:
    """Read, check and prepare the next batches on another thread while this one writes
    (SQLite and the PostgreSQL driver release the GIL while they work)."""
    done = object()
    slots: queue.Queue[Any] = queue.Queue(maxsize=depth)

    def produce() -> None:
        try:
            for batch in prepared:
                slots.put(batch)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            slots.put(exc)
        slots.put(done)

    threading.Thread(target=produce, name="clarion-import-reader", daemon=True).start()
    while (item := slots.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item


def import_rows(
    db: Database,
    project_id: str,
    rows: Iterable[Row | tuple[int, str]],
    batch_size: int = 2000,
    progress: Callable[[int], None] = lambda n: None,
    expected_rows: int | None = None,
) -> Report:
    """Import ``rows`` in this process: a thread reads and prepares batches while this one
    writes them. For the value indexes and ``expected_rows``, see bulk_load."""
    report = Report()
    started = time.perf_counter()
    with bulk_load(db, expected_rows, report):
        fixed = stamp(db, project_id, utcnow())
        statistics = Statistics(db)
        for prepared in _ahead(batches(rows, batch_size, report, fixed)):
            write_batch(db, fixed, prepared, report)
            progress(len(prepared.rows))
            statistics.written(report.rows)
    report.seconds = time.perf_counter() - started
    return report


def stamp(db: Database, project_id: str, now: datetime) -> Stamp:
    dialect = db.engine.dialect
    return Stamp(
        project_id,
        now,
        bulk.bind_processor(dialect, U, "created_at")(now),
        bulk.bind_processor(dialect, U, "properties"),
    )


@contextmanager
def bulk_load(db: Database, expected_rows: int | None, report: Report) -> Iterator[None]:
    """When ``expected_rows`` (the file's size, if known) is at least BULK_LOAD_MIN and at
    least the number of users already stored, the value indexes of user properties are
    dropped for the load and built once at the end (also when the import fails): maintained
    row by row they are most of a large import's cost."""
    report.bulk_load = expected_rows is not None and expected_rows >= max(
        BULK_LOAD_MIN, _stored_users(db)
    )
    if report.bulk_load:
        _drop_value_indexes(db)
    try:
        yield
    finally:
        if report.bulk_load:
            index_started = time.perf_counter()
            _build_value_indexes(db)
            report.index_seconds = time.perf_counter() - index_started


class Statistics:
    """Fresh PostgreSQL statistics as the tables grow (at 1k, 2k, 4k... rows written): with
    stale ones PostgreSQL plans the per-batch lookups as scans, and the import turns
    quadratic. SQLite needs none."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.next_at = 1000

    def written(self, rows: int) -> None:
        if self.db.is_sqlite or rows < self.next_at:
            return
        _analyze(self.db)
        while self.next_at <= rows:
            self.next_at *= 2


def _stored_users(db: Database) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(U)) or 0


def _drop_value_indexes(db: Database) -> None:
    with db.write() as session:
        for index in VALUE_INDEXES:
            session.execute(DropIndex(index, if_exists=True))


def _build_value_indexes(db: Database) -> None:
    for index in VALUE_INDEXES:  # one transaction each: the write lock is held for less
        with db.write() as session:
            restore_indexes(session.connection(), [index])


def _analyze(db: Database) -> None:
    with db.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE users, devices, user_properties")
        conn.commit()


def write_batch(db: Database, fixed: Stamp, batch: Prepared, report: Report) -> None:
    """One batch in one transaction. New users, their properties and devices go to the
    driver as the tuples the reader prepared (the bulk of an import); rows of users that
    already exist are re-keyed to them and update through SQLAlchemy."""
    with db.write(trusted=True) as session:
        if db.is_sqlite:
            _tune(session)
        existing = _existing_users(
            session, fixed.project_id, [r.project_user_id for r in batch.rows]
        )
        new_users: list[tuple[Any, ...]] = batch.users
        props: list[tuple[Any, ...]] = []
        devices: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {}  # id: (values, attrs)
        updates: list[dict[str, Any]] = []
        stale: list[dict[str, Any]] = []
        if existing:
            new_users = []
        for i, row in enumerate(batch.rows):
            current = existing.get(row.project_user_id) if existing else None
            if current is None:
                if existing:
                    new_users.append(batch.users[i])
                props += batch.indexed[i]
                for device, attributes in zip(batch.devices[i], row.devices, strict=True):
                    devices[device[1]] = (device, attributes)
                continue
            uid, stored = current
            clean = {k: v for k, v in {**stored, **row.properties}.items() if v is not None}
            updates.append({"uid": uid, "props": clean, "now": fixed.now})
            stale += [{"uid": uid, "k": k} for k in row.properties]
            props += [(uid, *entry[1:]) for entry in batch.indexed[i]]
            for device, attributes in zip(batch.devices[i], row.devices, strict=True):
                devices[device[1]] = ((*device[:2], uid, *device[3:]), attributes)
        bulk.insert_tuples(session, U, _USER_INSERT, new_users)
        if updates:
            session.execute(_UPDATE_USER, updates)
        if stale:
            session.execute(_DELETE_PROPS, stale)
        bulk.insert_tuples(session, P, _PROPERTY_INSERT, props)
        _write_devices(session, fixed, devices)
    report.rows += len(batch.rows)
    report.users_created += len(new_users)
    report.users_updated += len(updates)
    report.devices += len(devices)


def _tune(session: Session) -> None:
    """Once per connection: a large page cache and mmap (the tables outgrow the defaults),
    and checkpoints of the write-ahead log every IMPORT_CHECKPOINT_PAGES instead of every
    1,000 pages (pages that several batches change are copied to the database once)."""
    conn = session.connection()
    info = conn.connection.info
    if not info.get("clarion_import"):
        conn.exec_driver_sql(f"PRAGMA cache_size=-{IMPORT_CACHE_KB}")
        conn.exec_driver_sql(f"PRAGMA mmap_size={IMPORT_MMAP_BYTES}")
        conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint={IMPORT_CHECKPOINT_PAGES}")
        info["clarion_import"] = True


def _existing_users(
    session: Session, project_id: str, puids: list[str]
) -> dict[str, tuple[str, dict[str, Any]]]:
    dialect = session.get_bind().dialect
    stmt = select(U.c.project_user_id, U.c.id, U.c.properties).where(
        U.c.project_id == project_id, bulk.in_values(U.c.project_user_id, puids, dialect)
    )
    return {puid: (uid, props or {}) for puid, uid, props in session.execute(stmt)}


def _write_devices(
    session: Session, fixed: Stamp, devices: dict[str, tuple[tuple[Any, ...], dict[str, Any]]]
) -> None:
    """Insert new devices, update known ones (a device moves to the row's user)."""
    if not devices:
        return
    dialect = session.get_bind().dialect
    found = set(
        session.scalars(
            select(D.c.id).where(
                D.c.project_id == fixed.project_id, bulk.in_values(D.c.id, list(devices), dialect)
            )
        )
    )
    fresh = []
    changed = []
    for did, (values, attributes) in devices.items():
        if did not in found:
            fresh.append(values)
            continue
        # (project, id, user, attributes JSON, *columns, created, updated)
        update = (values[2], attributes, *values[4:-2], fixed.now)
        changed.append(
            {"pid": fixed.project_id, "did": did}
            | {f"v_{f}": v for f, v in zip(_DEVICE_FIELDS, update, strict=True)}
        )
    bulk.insert_tuples(session, D, _DEVICE_INSERT, fresh)
    if changed:
        session.execute(_UPDATE_DEVICE, changed)


def count_rows(path: Path) -> int:
    """Lines in the file (for the progress bar), read in large blocks."""
    with path.open("rb") as fh:
        return sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 20), b""))
