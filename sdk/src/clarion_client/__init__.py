"""clarion-client: trigger API-triggered campaigns on hosted Clix or any Clarion server,
with finite timeouts, retries only on transient failures, dedupe, logs that leak no
secrets, and trigger plans checked before anything is sent."""

from clarion_client._base import TriggerResult, TriggerStatus
from clarion_client.client import AsyncClient, Client
from clarion_client.config import DEFAULT_BASE_URL, Credentials, MissingCredentialsError
from clarion_client.dedupe import MemoryDedupe, RedisDedupe, SQLDedupe
from clarion_client.errors import (
    AuthenticationError,
    ClixError,
    DedupeInProgressError,
    InvalidRequestError,
    NetworkError,
    PermissionError,
    PlanMismatchError,
    RateLimitError,
    ServerError,
    TimeoutError,
)
from clarion_client.plan import Plan, Verdict, validate
from clarion_client.retry import RetryPolicy

__all__ = [
    "DEFAULT_BASE_URL",
    "AsyncClient",
    "AuthenticationError",
    "Client",
    "ClixError",
    "Credentials",
    "DedupeInProgressError",
    "InvalidRequestError",
    "MemoryDedupe",
    "MissingCredentialsError",
    "NetworkError",
    "PermissionError",
    "Plan",
    "PlanMismatchError",
    "RateLimitError",
    "RedisDedupe",
    "RetryPolicy",
    "SQLDedupe",
    "ServerError",
    "TimeoutError",
    "TriggerResult",
    "TriggerStatus",
    "Verdict",
    "validate",
]
