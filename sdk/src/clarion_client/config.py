"""Where the client's credentials come from: arguments first, then the environment
(``CLIX_PROJECT_ID``, ``CLIX_API_KEY``, ``CLIX_BASE_URL``). The key is never shown."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

DEFAULT_BASE_URL = "https://api.clix.so"


class MissingCredentialsError(ValueError):
    """A project id or API key is missing; raised before any request is sent."""


@dataclass(frozen=True)
class Credentials:
    project_id: str
    api_key: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL

    def __repr__(self) -> str:
        return (
            f"Credentials(project_id={self.project_id!r}, api_key={redact(self.api_key)!r}, "
            f"base_url={self.base_url!r})"
        )

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Clix-Project-ID": self.project_id, "X-Clix-API-Key": self.api_key}


def resolve(
    project_id: str | None = None, api_key: str | None = None, base_url: str | None = None
) -> Credentials:
    project_id = project_id or os.environ.get("CLIX_PROJECT_ID", "")
    api_key = api_key or os.environ.get("CLIX_API_KEY", "")
    base_url = base_url or os.environ.get("CLIX_BASE_URL", "") or DEFAULT_BASE_URL
    given = (("project_id (CLIX_PROJECT_ID)", project_id), ("api_key (CLIX_API_KEY)", api_key))
    missing = [name for name, value in given if not value.strip()]
    if missing:
        raise MissingCredentialsError(
            f"missing {' and '.join(missing)}: pass it to the client or set the environment "
            "variable (keep the key in a secret store, never in code)"
        )
    return Credentials(project_id.strip(), api_key.strip(), base_url.rstrip("/"))


def redact(secret: str) -> str:
    """What may be shown of a key: its kind prefix only (``clx_sk_…``)."""
    if not secret:
        return ""
    prefix = secret[:7] if secret.startswith(("clx_sk_", "clx_pk_")) else ""
    return f"{prefix}…[redacted]"
