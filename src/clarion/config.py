"""One typed settings class; every knob is an environment variable prefixed ``CLARION_``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from clarion.webhooks import netguard


class Settings(BaseSettings):
    """Clarion's configuration. See the README's configuration reference."""

    model_config = SettingsConfigDict(env_prefix="CLARION_", env_file=None, extra="ignore")

    var_dir: Path = Field(default=Path("var"), description="Where local state lives.")
    database_url: SecretStr = Field(
        default=SecretStr(""),
        description="SQLAlchemy URL. Empty means a SQLite file var_dir/clarion.db in WAL mode.",
    )
    database_lock_timeout_seconds: float = Field(
        default=30,
        gt=0,
        le=600,
        description="How long a statement waits for a database lock (SQLite's busy timeout, "
        "PostgreSQL's lock_timeout) before the request gets 503 with Retry-After.",
    )
    host: str = Field(default="127.0.0.1", description="Address `clarion serve` binds.")
    port: int = Field(default=8080, description="Port `clarion serve` listens on.")
    embedded_worker: bool = Field(default=True, description="Run the worker inside the server.")
    worker_threads: int = Field(default=2, ge=1, le=64, description="Embedded worker threads.")
    worker_processes: int | None = Field(
        default=None,
        ge=0,
        le=32,
        description="Worker processes `clarion serve` runs beside its embedded worker, each "
        "with CLARION_WORKER_THREADS threads (default: one per core beyond the first; 0: none).",
    )
    worker_metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="The port on which the first of `clarion serve`'s worker processes serves "
        "Prometheus metrics, the next on the port after it, and so on, on "
        "127.0.0.1 (default: they serve none).",
    )
    worker_batch_size: int = Field(default=32, ge=1, le=1000, description="Jobs per claim.")
    worker_share_under_load: float = Field(
        default=0.25,
        gt=0,
        le=1,
        description="While trigger requests are in flight, the embedded worker takes at most "
        "this share of the time, so that accepting stays fast (1: no pacing).",
    )
    cache_ttl_seconds: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="How long an API key or campaign lookup is reused; a change made by "
        "another process is seen within this time (0: no cache).",
    )
    chunk_size: int = Field(
        default=500, ge=1, le=10_000,
        description="Recipients per job (a trigger's first job: at most 50).",
    )  # fmt: skip
    job_lease_seconds: int = Field(
        default=60, ge=5, description="A job held longer than this by a silent worker is retried."
    )
    task_engine: Literal["builtin", "procrastinate"] = Field(
        default="builtin",
        description="Where jobs wait and who runs them: builtin (Clarion's job table; SQLite "
        "or PostgreSQL) or procrastinate (Procrastinate on the same PostgreSQL; its workers "
        "are `clarion worker` processes). Every process of a deployment must say the same.",
    )
    poll_interval_seconds: float = Field(
        default=0.5, gt=0, description="How often an idle worker looks for due jobs."
    )
    max_body_bytes: int = Field(default=1_000_000, ge=1024, description="Larger bodies get 413.")
    max_targets: int = Field(default=1000, ge=1, description="audience.targets limit per trigger.")
    max_send_batch: int = Field(
        default=500, ge=1, description="push_notifications limit per messages:send call."
    )
    max_properties: int = Field(
        default=200, ge=1, description="Keys per properties object (trigger, user, event)."
    )
    max_property_depth: int = Field(
        default=8, ge=1, le=64, description="Nesting depth of objects and arrays in properties."
    )
    max_string_length: int = Field(
        default=10_000, ge=16, description="Characters per string value in properties."
    )
    rate_limit_per_second: int = Field(
        default=1000,
        ge=1,
        description="Requests/s per project (token bucket, 1 s burst) unless the project has "
        "its own (`clarion projects set-rate-limit`); over it: 429.",
    )
    rate_limit_backend: Literal["memory", "redis", "postgres"] = Field(
        default="memory",
        description="Where the rate-limit buckets live, for the API's limits and the "
        "campaigns' send rates: memory (per process), redis or postgres (shared by every API "
        "process and worker, so the limits hold across them).",
    )
    redis_url: SecretStr = Field(
        default=SecretStr("redis://127.0.0.1:6379/0"),
        description="Redis for CLARION_RATE_LIMIT_BACKEND=redis (may hold a password).",
    )
    auth_failures_per_minute: int = Field(
        default=30,
        ge=1,
        description="Failed authentications a source address may make per minute before its "
        "API requests get 429.",
    )
    broadcast_multiplier: float = Field(
        default=10,
        gt=0,
        description="Broadcasts may send at most this many times the project's device count "
        "per 15 minutes, unless the project has its own (`clarion projects "
        "set-broadcast-limit`).",
    )
    outbox_path: Path | None = Field(
        default=None, description="Sink provider's JSONL outbox; default var_dir/outbox.jsonl."
    )
    sink_latency_ms: int = Field(
        default=0,
        ge=0,
        le=60_000,
        description="Make the sink sleep per batch, to mimic a provider.",
    )
    secret_key: SecretStr = Field(
        default=SecretStr(""),
        description="Fernet key that encrypts stored provider credentials; empty: one kept in "
        "var_dir/secret.key (set it, the same on every node, beyond one machine).",
    )
    fcm_base_url: str = Field(
        default="https://fcm.googleapis.com",
        description="FCM HTTP v1 base URL (tests point it at a local fake).",
    )
    apns_base_url: str = Field(
        default="https://api.push.apple.com",
        description="APNs base URL (https://api.sandbox.push.apple.com for development builds).",
    )
    apns_ca_file: Path | None = Field(
        default=None,
        description="A CA bundle to trust for APNs besides the system's (a local fake, a proxy).",
    )
    smtp_ca_file: Path | None = Field(
        default=None,
        description="A CA bundle to trust for SMTP relays besides the system's (a local relay).",
    )
    webhook_allowed_networks: str = Field(
        default="",
        description="Comma-separated networks (CIDR) webhooks may reach although they are not "
        "public: loopback, private and link-local addresses are refused otherwise (SSRF guard).",
    )
    webhook_retry_hours: float = Field(
        default=24, gt=0, le=168, description="How long a failing webhook delivery is retried."
    )
    idempotency_ttl_hours: float = Field(
        default=24, gt=0, le=24 * 30, description="How long an Idempotency-Key is remembered."
    )
    console_session_hours: float = Field(
        default=12, gt=0, le=24 * 30, description="How long a console sign-in lasts."
    )
    demo: bool = Field(default=True, description="Seed demo data on first start.")
    log_level: str = Field(default="info", description="uvicorn log level.")

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        netguard.parse_networks(value)  # raises, naming the bad entry
        return value

    def allowed_networks(self) -> list[netguard.Network]:
        return netguard.parse_networks(self.webhook_allowed_networks)

    def resolved_database_url(self) -> str:
        """The URL to connect with. It may hold a password: print ``display_database_url``."""
        if url := self.database_url.get_secret_value():
            return url
        return f"sqlite:///{(self.var_dir / 'clarion.db').as_posix()}"

    def display_database_url(self) -> str:
        return make_url(self.resolved_database_url()).render_as_string(hide_password=True)

    def resolved_outbox_path(self) -> Path:
        return self.outbox_path or self.var_dir / "outbox.jsonl"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
