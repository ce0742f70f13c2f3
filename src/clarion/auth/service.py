"""Projects and keys: create, list, revoke, and authenticate a request's headers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from clarion import cache
from clarion.auth import keys, repository
from clarion.errors import AuthenticationError, InvalidRequest, NotFound, PermissionDenied
from clarion.ids import uuid7
from clarion.storage.models import ApiKey, Project, utcnow
from clarion.templating import urls

BAD_CREDENTIALS = (
    "Invalid X-Clix-Project-ID or X-Clix-API-Key: send the project id and one of its active "
    "API keys."
)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the project and the kind of key used."""

    project_id: str
    key_id: str
    kind: keys.KeyKind

    def require_secret(self) -> None:
        if self.kind != "secret":
            raise PermissionDenied(
                "This endpoint needs a secret API key; a public key may only call the SDK "
                "ingestion endpoints (devices, user properties, events)."
            )


def authenticate(session: Session, project_id: str | None, api_key: str | None) -> Principal:
    """Check the Clix headers. Unknown project and wrong key get the same answer."""
    if not project_id or not api_key:
        raise AuthenticationError(BAD_CREDENTIALS)
    key_hash = keys.hash_key(api_key)
    principal = cache.keys.get(key_hash)
    if not isinstance(principal, Principal):
        row = repository.key_by_hash(session, key_hash)
        if (
            row is None
            or row.revoked_at is not None
            or not keys.hashes_match(row.key_hash, api_key)
        ):
            raise AuthenticationError(BAD_CREDENTIALS)
        kind: keys.KeyKind = "secret" if row.kind == "secret" else "public"
        principal = Principal(project_id=row.project_id, key_id=row.id, kind=kind)
        cache.keys.put(key_hash, principal)
    if principal.project_id != project_id:
        raise AuthenticationError(BAD_CREDENTIALS)
    return principal


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


def create_key(session: Session, project_id: str, kind: keys.KeyKind, name: str = "") -> NewKey:
    if repository.get_project(session, project_id) is None:
        raise NotFound(f"No project {project_id!r}.", code="project_not_found")
    plaintext = keys.generate_key(kind)
    row = ApiKey(
        id=uuid7(),
        project_id=project_id,
        kind=kind,
        name=name,
        prefix=keys.display_prefix(plaintext),
        key_hash=keys.hash_key(plaintext),
    )
    session.add(row)
    session.flush()
    return NewKey(row=row, plaintext=plaintext)


def list_keys(session: Session, project_id: str) -> Sequence[ApiKey]:
    return repository.list_keys(session, project_id)


def revoke_key(session: Session, project_id: str, key_id: str) -> ApiKey:
    row = session.get(ApiKey, key_id)
    if row is None or row.project_id != project_id:
        raise NotFound(f"No key {key_id!r} in project {project_id!r}.", code="key_not_found")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    cache.keys.clear()
    return row
