"""Projects and keys: create, list, revoke, and authenticate a request's headers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy.orm import Session

from clarion import cache
from clarion.audit import service as audit
from clarion.auth import keys, repository
from clarion.errors import (
    AuthenticationError,
    Conflict,
    InvalidRequest,
    NotFound,
    PermissionDenied,
)
from clarion.ids import uuid7
from clarion.storage.models import ApiKey, Project, utcnow
from clarion.templating import urls

MAX_OVERLAP = timedelta(days=30)
_RATE = "rate:"  # cache.projects key prefix
BAD_CREDENTIALS = (
    "Invalid X-Clix-Project-ID or X-Clix-API-Key: send the project id and one of its active "
    "API keys."
)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the project, the key used and what it may do."""

    project_id: str
    key_id: str
    kind: keys.KeyKind
    scopes: frozenset[str]  # no default: what a key may do is always stated
    expires_at: datetime | None = None  # a rotated key's end

    @property
    def actor(self) -> str:
        return audit.key_actor(self.key_id)

    def require(self, *any_of: keys.Scope, secret: bool = True) -> None:
        """Refuse unless the key has one of ``any_of``; ``secret``: public keys may call
        only the SDK endpoints, whatever their scopes."""
        if secret and self.kind != "secret":
            raise PermissionDenied(
                "This endpoint needs a secret API key; a public key may only call the SDK "
                "ingestion endpoints (devices, user properties, events, inbox)."
            )
        if not self.scopes.intersection(any_of):
            needed = " or ".join(repr(s) for s in any_of)
            raise PermissionDenied(
                f"This API key lacks the {needed} scope this endpoint needs (it has "
                f"{', '.join(sorted(self.scopes)) or 'none'}); use a key with it, or make one: "
                f"clarion keys create --scope {any_of[0]}"
            )


def authenticate(session: Session, project_id: str | None, api_key: str | None) -> Principal:
    """Check the Clix headers. Unknown project, wrong, revoked and expired keys all get the
    same answer."""
    principal = cached_principal(project_id, api_key)
    if principal is None:
        assert api_key is not None
        key_hash = keys.hash_key(api_key)
        row = repository.key_by_hash(session, key_hash)
        if (
            row is None
            or row.revoked_at is not None
            or not keys.hashes_match(row.key_hash, api_key)
        ):
            raise AuthenticationError(BAD_CREDENTIALS)
        kind: keys.KeyKind = "secret" if row.kind == "secret" else "public"
        scopes = keys.PUBLIC_SCOPES if kind == "public" else row.scopes or ()
        principal = Principal(row.project_id, row.id, kind, frozenset(scopes), row.expires_at)
        cache.keys.put(key_hash, principal)
    _check(principal, project_id)
    return principal


def cached_principal(project_id: str | None, api_key: str | None) -> Principal | None:
    """The principal for these headers if the key cache knows it (no database), None if
    the database must be asked. Missing headers and a known key of another project or past
    its end raise AuthenticationError."""
    if not project_id or not api_key:
        raise AuthenticationError(BAD_CREDENTIALS)
    principal = cache.keys.get(keys.hash_key(api_key))
    if not isinstance(principal, Principal):
        return None
    _check(principal, project_id)
    return principal


def _check(principal: Principal, project_id: str | None) -> None:
    if principal.project_id != project_id or (
        principal.expires_at is not None and principal.expires_at <= utcnow()
    ):
        raise AuthenticationError(BAD_CREDENTIALS)


def rate_limit(session: Session, project_id: str) -> int:
    """The project's own requests/s limit, 0 when it uses the default (cached)."""
    cached = cached_rate_limit(project_id)
    if cached is not None:
        return cached
    limit = repository.rate_limit(session, project_id) or 0
    cache.projects.put(_RATE + project_id, limit)
    return limit


def cached_rate_limit(project_id: str) -> int | None:
    cached = cache.projects.get(_RATE + project_id)
    return cached if isinstance(cached, int) else None


# A project's own limits: the valid range, what a refusal says, the audit action.
_LIMITS: dict[str, tuple[float, float, str, str]] = {
    "rate_limit": (1, 1_000_000, "a rate limit is 1 to 1,000,000 requests/s",
                   "project.rate_limit_set"),
    "broadcast_multiplier": (0.001, 10_000, "a broadcast multiplier is 0.001 to 10,000",
                             "project.broadcast_limit_set"),
}  # fmt: skip


def set_limit(
    session: Session,
    project_id: str,
    name: Literal["rate_limit", "broadcast_multiplier"],
    value: float | None,
    actor: str = audit.CLI,
) -> None:
    """Set one of the project's limits (None: back to the default), recorded in the audit
    log."""
    project = repository.get_project(session, project_id)
    if project is None:
        raise NotFound(f"No project {project_id!r}.", code="project_not_found")
    low, high, rule, action = _LIMITS[name]
    if value is not None and not low <= value <= high:
        raise InvalidRequest(rule, code="invalid_limit")
    audit.record(session, project_id, actor, action, "project", project_id,
                 before=getattr(project, name), after=value)  # fmt: skip
    setattr(project, name, value)
    session.flush()
    cache.projects.clear()


def set_rate_limit(
    session: Session, project_id: str, limit: int | None, actor: str = audit.CLI
) -> None:
    """Set the project's requests/s limit; None returns it to the default."""
    set_limit(session, project_id, "rate_limit", limit, actor)


def touch_keys(session: Session, used: dict[str, datetime]) -> None:
    repository.touch_keys(session, used)


def create_project(session: Session, name: str, url_schemes: Sequence[str] = ()) -> Project:
    project = Project(id=uuid7(), name=name, url_schemes=_checked_schemes(url_schemes))
    session.add(project)
    session.flush()
    return project


def set_url_schemes(session: Session, project: Project, schemes: Sequence[str]) -> Project:
    """The app's own deep-link schemes (``myshop`` for ``myshop://...``), allowed in a
    message's URL fields besides https."""
    project.url_schemes = _checked_schemes(schemes)
    session.flush()
    cache.projects.clear()
    return project


def url_schemes(session: Session, project_id: str) -> frozenset[str]:
    cached = cache.projects.get(project_id)
    if isinstance(cached, frozenset):
        return cached
    project = session.get(Project, project_id)
    schemes = frozenset(project.url_schemes or ()) if project is not None else frozenset()
    cache.projects.put(project_id, schemes)
    return schemes


def _checked_schemes(schemes: Sequence[str]) -> list[str]:
    cleaned = []
    for scheme in schemes:
        scheme = scheme.strip().lower().removesuffix("://").removesuffix(":")
        if not urls.valid_scheme(scheme):
            raise InvalidRequest(
                f"{scheme!r} is not a usable deep-link scheme: letters, digits, + - . "
                "starting with a letter (javascript, data, file and vbscript are refused)",
                code="invalid_url_scheme",
            )
        cleaned.append(scheme)
    return sorted(set(cleaned))


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly made key: ``plaintext`` exists only here and is shown once."""

    row: ApiKey
    plaintext: str


def create_key(
    session: Session,
    project_id: str,
    kind: keys.KeyKind,
    name: str = "",
    scopes: Iterable[str] | None = None,
    actor: str = audit.CLI,
) -> NewKey:
    """A new key. A secret key without ``scopes`` gets DEFAULT_SECRET_SCOPES (least
    privilege); a public key always has ``ingest`` alone."""
    if repository.get_project(session, project_id) is None:
        raise NotFound(f"No project {project_id!r}.", code="project_not_found")
    if kind == "public":
        chosen: list[keys.Scope] = list(keys.PUBLIC_SCOPES)
    else:
        try:
            chosen = keys.checked_scopes(keys.DEFAULT_SECRET_SCOPES if scopes is None else scopes)
        except ValueError as exc:
            raise InvalidRequest(str(exc), code="invalid_scope") from None
        if not chosen:
            raise InvalidRequest("a key needs at least one scope", code="invalid_scope")
    plaintext = keys.generate_key(kind)
    row = ApiKey(
        id=uuid7(),
        project_id=project_id,
        kind=kind,
        name=name,
        prefix=keys.display_prefix(plaintext),
        key_hash=keys.hash_key(plaintext),
        scopes=chosen,
    )
    session.add(row)
    session.flush()
    audit.record(session, project_id, actor, "key.created", "key", row.id,
                 kind=kind, name=name, scopes=chosen)  # fmt: skip
    return NewKey(row=row, plaintext=plaintext)


def list_keys(session: Session, project_id: str) -> Sequence[ApiKey]:
    return repository.list_keys(session, project_id)


def _key(session: Session, project_id: str, key_id: str) -> ApiKey:
    row = session.get(ApiKey, key_id)
    if row is None or row.project_id != project_id:
        raise NotFound(f"No key {key_id!r} in project {project_id!r}.", code="key_not_found")
    return row


def revoke_key(session: Session, project_id: str, key_id: str, actor: str = audit.CLI) -> ApiKey:
    row = _key(session, project_id, key_id)
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit.record(session, project_id, actor, "key.revoked", "key", row.id, name=row.name)
    cache.keys.clear()
    return row


def key_ends(session: Session, key_id: str) -> datetime | None:
    row = session.get(ApiKey, key_id)
    return row.expires_at if row is not None else None


def rotate_key(
    session: Session,
    project_id: str,
    key_id: str,
    overlap: timedelta,
    actor: str = audit.CLI,
) -> NewKey:
    """A new key with the old one's kind, name and scopes; the old one keeps working until
    ``overlap`` from now (or its own earlier end), so callers can switch without a gap."""
    old = _key(session, project_id, key_id)
    if old.revoked_at is not None:
        raise Conflict(f"Key {key_id!r} is revoked; create a new key instead.",
                       code="key_revoked")  # fmt: skip
    if overlap < timedelta(0) or overlap > MAX_OVERLAP:
        raise InvalidRequest(
            f"the overlap must be between 0 and {MAX_OVERLAP.days} days", code="invalid_overlap"
        )
    ends = utcnow() + overlap
    if old.expires_at is None or old.expires_at > ends:
        old.expires_at = ends
    kind: keys.KeyKind = "secret" if old.kind == "secret" else "public"
    new = create_key(session, project_id, kind, old.name, old.scopes, actor)
    audit.record(session, project_id, actor, "key.rotated", "key", old.id,
                 replaced_by=new.row.id, old_key_expires_at=old.expires_at.isoformat())  # fmt: skip
    cache.keys.clear()
    return new
