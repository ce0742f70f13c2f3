"""The schema. Alembic migrations create it; tests check that both agree."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from clarion import clock

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return clock.now()


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime: use clarion.storage.models.utcnow()")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}  # noqa: RUF012


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # The app's own deep-link schemes (myshop for myshop://...), allowed in URL fields.
    url_schemes: Mapped[list[Any]] = mapped_column(JSON, default=list, server_default="[]")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    rate_limit: Mapped[int | None] = mapped_column(Integer)  # requests/s; None: the default
    # Broadcasts may send this many times the project's device count per 15 minutes.
    broadcast_multiplier: Mapped[float | None] = mapped_column(Float)  # None: the default
    # Frequency caps per channel, quiet hours (delivery.controls.ProjectDelivery); None: none.
    delivery_settings: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))  # secret | public
    name: Mapped[str] = mapped_column(String(200), default="")
    prefix: Mapped[str] = mapped_column(String(32))  # shown in listings; not enough to use
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[Any]] = mapped_column(JSON, default=list, server_default="[]")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # rotated: the overlap
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # to the minute


class RateBucket(Base):
    """A token bucket shared by every API process (CLARION_RATE_LIMIT_BACKEND=postgres)."""

    __tablename__ = "rate_buckets"
    key: Mapped[str] = mapped_column(String(300), primary_key=True)  # project id / address
    tokens: Mapped[float] = mapped_column(Float)
    at: Mapped[float] = mapped_column(Float)  # unix seconds, the database's clock
    allowed: Mapped[bool] = mapped_column(Boolean)  # the last take's answer


class AuditEntry(Base):
    """Who changed what, when: keys, campaigns, project limits, refused broadcasts."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_project", "project_id", "id"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # uuid7: time ordered
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(300))  # key:<id> | admin:<email> | cli | system
    action: Mapped[str] = mapped_column(String(64))  # key.created, campaign.updated, ...
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(255))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Campaign(Base):
    __tablename__ = "campaigns"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(20))
    type: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CampaignVersion(Base):
    """An immutable snapshot of a campaign's definition; triggers point at one."""

    __tablename__ = "campaign_versions"
    campaign_id: Mapped[str] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("project_id", "project_user_id"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    project_user_id: Mapped[str | None] = mapped_column(String(255))  # None: anonymous
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    last_session_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class UserProperty(Base):
    """One row per user property, so that each audience condition is an index lookup."""

    __tablename__ = "user_properties"
    __table_args__ = (
        # Key and value lead: inserts and lookups compare short, varied fields first (the
        # project id, 36 equal bytes in nearly every comparison, comes after).
        Index("ix_user_properties_lookup_text", "key", "value_text", "project_id", "user_id"),
        Index(
            "ix_user_properties_lookup_num",
            "key",
            "value_num",
            "project_id",
            "user_id",
            sqlite_where=text("value_num IS NOT NULL"),
            postgresql_where=text("value_num IS NOT NULL"),
        ),
        {"sqlite_with_rowid": False},  # a probe on (user_id, key) reads the value directly
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(36))
    value_text: Mapped[str | None] = mapped_column(String(1024))  # VALUE_TEXT_MAX
    value_num: Mapped[float | None] = mapped_column(Float)  # numbers; datetimes as unix seconds


# The indexes a large import drops for its load and builds at the end (users.importer);
# migrate.upgrade() builds them again if an import was killed before it could.
VALUE_INDEXES = tuple(
    sorted(cast(Table, UserProperty.__table__).indexes, key=lambda i: str(i.name))
)


class ProviderCredential(Base):
    """A project's credentials for one provider. ``sealed`` is encrypted (credentials.crypto);
    ``settings`` holds what is not secret (the FCM project id, ...)."""

    __tablename__ = "provider_credentials"
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    provider: Mapped[str] = mapped_column(String(20), primary_key=True)  # fcm | apns | ...
    sealed: Mapped[str] = mapped_column(Text)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Device(Base):
    __tablename__ = "devices"
    __table_args__ = (Index("ix_devices_user", "user_id"),)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    platform: Mapped[str] = mapped_column(String(20), default="")  # IOS | ANDROID | ...
    app_version: Mapped[str] = mapped_column(String(64), default="", server_default="")
    app_version_key: Mapped[str | None] = mapped_column(String(128))  # values.version_key
    sdk_type: Mapped[str] = mapped_column(String(32), default="", server_default="")
    locale_region: Mapped[str] = mapped_column(String(20), default="")
    locale_language: Mapped[str] = mapped_column(String(20), default="")
    timezone: Mapped[str] = mapped_column(String(64), default="")
    is_push_permission_granted: Mapped[bool] = mapped_column(Boolean, default=False)
    push_token: Mapped[str | None] = mapped_column(Text)
    push_token_type: Mapped[str] = mapped_column(String(20), default="")
    # Set when a provider said the token is no longer valid (the token is then cleared).
    token_invalid_reason: Mapped[str | None] = mapped_column(String(255))
    token_invalidated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Trigger(Base):
    __tablename__ = "triggers"
    __table_args__ = (
        Index("ix_triggers_campaign", "campaign_id", "created_at"),
        Index("ix_triggers_project", "project_id", "created_at"),  # the broadcast guard
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    campaign_version: Mapped[int] = mapped_column(Integer)
    audience_mode: Mapped[str] = mapped_column(String(20))  # broadcast | targets | default
    targets: Mapped[list[Any]] = mapped_column(JSON, default=list)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20))
    matched: Mapped[int | None] = mapped_column(Integer)
    excluded_targets: Mapped[list[Any]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # scheduled: not before
    in_local_time: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Job(Base):
    """A unit of pipeline work still to do (a finished job is deleted). Unique per (trigger,
    kind, chunk), so that enqueueing it again is harmless."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("trigger_id", "kind", "chunk_no"),
        Index("ix_jobs_ready", "status", "run_after"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(20))  # resolve | deliver
    trigger_id: Mapped[str] = mapped_column(ForeignKey("triggers.id", ondelete="CASCADE"))
    chunk_no: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(20), default="queued")  # queued|running|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    run_after: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)


class Handover(Base):
    """A delivery step handing a chunk's messages to their providers: written in the commit
    before the first send, deleted in the commit that records the outcomes. One found by a
    later step means the step died mid-send: the messages it covers may have gone out. (It
    stands for a per-message ``sending`` mark: one row per chunk instead of an UPDATE per
    message; messages that caps or re-eligibility count still get the per-message mark.)"""

    __tablename__ = "handovers"
    trigger_id: Mapped[str] = mapped_column(
        ForeignKey("triggers.id", ondelete="CASCADE"), primary_key=True
    )
    chunk_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The chunk's pending messages that this hand-over does not cover (usually none).
    others: Mapped[list[str]] = mapped_column(JSON, default=list)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class MessageAttempt(Base):
    """A hand-over of a message to a provider that left it pending (retryable): when, the
    outcome and the provider's code. The hand-over that settles a message (sent or failed
    at the provider) is recorded on the message itself (Message.attempt_outcome): in a
    broadcast, where nearly every message is settled by its first hand-over, that is a row
    fewer to write per message. (Rows written before 0017 hold settling hand-overs too.)"""

    __tablename__ = "message_attempts"
    __table_args__ = (Index("ix_message_attempts_message", "message_id", "attempt"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    provider: Mapped[str] = mapped_column(String(20))
    outcome: Mapped[str] = mapped_column(String(20))  # sent|retryable|failed|invalid_recipient
    response_code: Mapped[str | None] = mapped_column(String(80))
    reason: Mapped[str | None] = mapped_column(Text)


class PendingChunk(Base):
    """A chunk of a trigger's messages of which some are still pending (queued or sending):
    written in the commit that writes the chunk's messages, deleted in the commit of the
    delivery step that leaves none of them pending. A trigger past resolving with none left
    is complete. (It stands for an index on the messages' status: see Message.)"""

    __tablename__ = "pending_chunks"
    trigger_id: Mapped[str] = mapped_column(
        ForeignKey("triggers.id", ondelete="CASCADE"), primary_key=True
    )
    chunk_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The chunk's recipients as resolving read them (JSON), for its first delivery step
    # alone: cleared by that step's first commit (see delivery.snapshots).
    recipients: Mapped[bytes | None] = mapped_column(LargeBinary)
    # The chunk's messages by status as written (queued, skipped), while nothing has changed
    # them: cleared by its first delivery step's first commit, a cancel, or a change to one
    # of its users. Counting a trigger's messages reads these instead of the chunk's rows.
    queued: Mapped[int | None] = mapped_column(Integer)
    skipped: Mapped[int | None] = mapped_column(Integer)


MESSAGE_FILLFACTOR = 30  # percent of a messages page filled by inserts (PostgreSQL)


class Message(Base):
    """One recipient's outcome: the Message Log. Unique per (trigger, user, device, channel).

    No index holds the status, so recording an outcome changes no indexed column: PostgreSQL
    rewrites the row in its own page (a heap-only update, with no new index entries), for
    which inserts leave its pages 70% free (MESSAGE_FILLFACTOR: a message's row grows by its
    rendered title and body when its outcome is recorded, and the old version keeps its
    place while a resolve's read is open; see migration 0021). What is still pending is
    known per chunk (PendingChunk)."""

    __tablename__ = "messages"
    __table_args__ = (
        # Led by the user: deleting a user deletes their messages, frequency caps read a
        # user's recent ones (no index of its own: one B-tree fewer per message written).
        UniqueConstraint("user_id", "trigger_id", "device_id", "channel"),
        Index("ix_messages_chunk", "trigger_id", "chunk_no"),
        {"postgresql_with": {"fillfactor": MESSAGE_FILLFACTOR}},
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(36))
    # None for a direct send (messages:send), which has no trigger. Not a foreign key: the
    # pipeline writes a trigger's messages only in a transaction that has locked and read the
    # trigger's row (and writes none once it is gone), so the reference is checked once per
    # commit. PostgreSQL's check, row by row, was 40-50% of its CPU in the COPY of message rows
    # (migration 0019). Nothing deletes triggers; whatever comes to must delete their messages
    # too (ix_messages_chunk leads with the trigger).
    trigger_id: Mapped[str | None] = mapped_column(String(36))
    chunk_no: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[str] = mapped_column(String(36))
    project_user_id: Mapped[str | None] = mapped_column(String(255))
    device_id: Mapped[str] = mapped_column(String(255))  # "" when the user had no device
    channel: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))  # queued|sending|sent|failed|skipped
    reason: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    image_url: Mapped[str | None] = mapped_column(Text)
    landing_url: Mapped[str | None] = mapped_column(Text)
    provider: Mapped[str | None] = mapped_column(String(20))
    provider_message_id: Mapped[str | None] = mapped_column(String(255))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    possible_duplicate: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime())  # scheduled per device
    # Counts toward the project's frequency cap (its campaign is not exempt).
    capped: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The hand-over that settled the message, if one did (MessageAttempt holds those before
    # it): the provider's verdict (sent, failed, invalid_recipient, retryable for a direct
    # send), its response code and when it answered. The attempt number is ``attempts``.
    attempt_outcome: Mapped[str | None] = mapped_column(String(20))
    response_code: Mapped[str | None] = mapped_column(String(80))
    attempted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Event(Base):
    """An SDK event (SESSION_START, PUSH_NOTIFICATION_TAPPED, custom ones)."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_user", "user_id", "created_at"),
        Index("ix_events_project_name", "project_id", "name", "created_at"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(36))
    device_id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255))
    source_type: Mapped[str] = mapped_column(String(64), default="")
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class LiveActivityToken(Base):
    """An iOS push-to-start token for one Live Activity attributes type on one device."""

    __tablename__ = "live_activity_tokens"
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    device_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    attributes_type: Mapped[str] = mapped_column(String(255), primary_key=True)
    token: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class LiveActivityRequest(Base):
    """A live-activities:start request, kept until Live Activity delivery exists."""

    __tablename__ = "live_activity_requests"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="stored")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookEndpoint(Base):
    """Where a project's delivery events go. ``sealed_secret`` is the signing secret,
    encrypted like provider credentials (it must be read back to sign)."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_project", "project_id"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2048))
    event_types: Mapped[list[Any]] = mapped_column(JSON, default=list)  # empty: every event
    headers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # static, not secret
    description: Mapped[str] = mapped_column(String(200), default="")
    sealed_secret: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookDelivery(Base):
    """One event for one endpoint: the outbox row, written in the same commit as the change
    it reports, and sent (and retried) by the webhook dispatcher."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "created_at"),
    )
    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # the webhook-id: msg_...
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    project_id: Mapped[str] = mapped_column(String(36))
    event_type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[str] = mapped_column(Text)  # the exact JSON body, signed as is
    status: Mapped[str] = mapped_column(String(20), default="pending")  # |delivered|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebhookAttempt(Base):
    """Every POST of a delivery: when, the answer's status (or the error), and how long."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_delivery", "delivery_id", "attempt"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE")
    )
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)


class InboxMessage(Base):
    """An in-app message in a user's inbox; its id is the message's (one entry per message,
    however often delivery is retried)."""

    __tablename__ = "inbox_messages"
    __table_args__ = (Index("ix_inbox_messages_user", "project_id", "user_id", "created_at"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(36))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text, default="")
    image_url: Mapped[str] = mapped_column(Text, default="")
    landing_url: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Admin(Base):
    """A console account. ``password_hash`` is argon2id."""

    __tablename__ = "admins"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ConsoleSession(Base):
    """A signed-in browser. ``id`` is the SHA-256 of the cookie's token (a stolen database
    row cannot be replayed as a cookie); ``csrf`` guards every form of the session."""

    __tablename__ = "console_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    admin_id: Mapped[str] = mapped_column(ForeignKey("admins.id", ondelete="CASCADE"))
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LoginFailure(Base):
    """A failed console sign-in, per source address: the rate limit counts them."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_source", "source", "at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class IdempotencyKey(Base):
    """One Idempotency-Key of one project: the request's fingerprint, and once answered the
    exact response, replayed byte for byte until ``expires_at``."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_expires", "expires_at"),)
    project_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    claim: Mapped[str] = mapped_column(String(32))  # who holds it while in flight
    status: Mapped[str] = mapped_column(String(20))  # in_flight | done
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    response_headers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    trigger_id: Mapped[str | None] = mapped_column(String(36), index=True)
    replays: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
