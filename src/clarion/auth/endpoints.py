"""Keys over the API (``admin`` scope): list, create, rotate, revoke; and the audit log."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Query, Request
from pydantic import BaseModel, Field

from clarion.audit import service as audit
from clarion.auth import service as auth
from clarion.auth.keys import KeyKind, Scope
from clarion.web import AdminKey, api_router, state

router = api_router("keys")


class KeyOut(BaseModel):
    id: str
    kind: str
    name: str
    prefix: str = Field(description="The first characters, never enough to use.")
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None = Field(description="To the minute.")
    expires_at: datetime | None = Field(description="A rotated key's end.")
    revoked_at: datetime | None

    @classmethod
    def of(cls, row: Any) -> KeyOut:
        return cls(id=row.id, kind=row.kind, name=row.name, prefix=row.prefix,
                   scopes=list(row.scopes), created_at=row.created_at,
                   last_used_at=row.last_used_at, expires_at=row.expires_at,
                   revoked_at=row.revoked_at)  # fmt: skip


class KeyList(BaseModel):
    keys: list[KeyOut]


class KeyIn(BaseModel):
    kind: KeyKind = "secret"
    name: str = Field(default="", max_length=200)
    scopes: list[Scope] | None = Field(
        default=None, description="Omitted: trigger only. Public keys always have ingest alone."
    )


class KeyCreated(KeyOut):
    key: str = Field(description="The key itself, shown this once; only its hash is stored.")


class RotateIn(BaseModel):
    overlap_seconds: int = Field(
        default=86_400,
        ge=0,
        le=int(auth.MAX_OVERLAP.total_seconds()),
        description="How long the old key keeps working.",
    )


class AuditOut(BaseModel):
    id: str
    at: datetime
    actor: str = Field(description="key:<id>, admin:<email>, cli or system")
    action: str
    target_type: str
    target_id: str
    details: dict[str, Any]


class AuditPage(BaseModel):
    entries: list[AuditOut]
    next_before: str | None = Field(description="Pass as before= for the next (older) page.")


def _created(new: auth.NewKey) -> KeyCreated:
    return KeyCreated(**KeyOut.of(new.row).model_dump(), key=new.plaintext)


@router.get("/keys", response_model=KeyList, summary="The project's API keys")
def list_keys(principal: AdminKey, request: Request) -> KeyList:
    with state(request).db.read() as session:
        return KeyList(keys=[KeyOut.of(k) for k in auth.list_keys(session, principal.project_id)])


@router.post("/keys", response_model=KeyCreated, status_code=201, summary="Create a key")
def create_key(body: KeyIn, principal: AdminKey, request: Request) -> KeyCreated:
    with state(request).db.write() as session:
        new = auth.create_key(session, principal.project_id, body.kind, body.name, body.scopes,
                              principal.actor)  # fmt: skip
        return _created(new)


@router.post("/keys/{key_id}:rotate", response_model=KeyCreated, status_code=201,
             summary="Rotate a key: a new one now, the old one ends after the overlap")  # fmt: skip
def rotate_key(key_id: str, body: RotateIn, principal: AdminKey, request: Request) -> KeyCreated:
    with state(request).db.write() as session:
        new = auth.rotate_key(session, principal.project_id, key_id,
                              timedelta(seconds=body.overlap_seconds), principal.actor)  # fmt: skip
        return _created(new)


@router.post("/keys/{key_id}:revoke", response_model=KeyOut, summary="Revoke a key now")
def revoke_key(key_id: str, principal: AdminKey, request: Request) -> KeyOut:
    with state(request).db.write() as session:
        return KeyOut.of(auth.revoke_key(session, principal.project_id, key_id, principal.actor))


@router.get("/audit-log", response_model=AuditPage, summary="Who changed what, newest first")
def audit_log(
    principal: AdminKey,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before: Annotated[str | None, Query(max_length=36)] = None,
) -> AuditPage:
    with state(request).db.read() as session:
        rows = audit.page(session, principal.project_id, limit + 1, before)
    more = len(rows) > limit
    rows = list(rows[:limit])
    return AuditPage(
        entries=[AuditOut.model_validate(r, from_attributes=True) for r in rows],
        next_before=rows[-1].id if more and rows else None,
    )
