"""API keys: shown once, stored only as a hash, prefixed, revocable."""

from __future__ import annotations

from sqlalchemy import select

from clarion.auth import keys
from clarion.auth import service as auth
from clarion.errors import AuthenticationError
from clarion.storage.db import Database
from clarion.storage.models import ApiKey
from tests.conftest import make_project


def test_keys_are_prefixed_and_stored_only_hashed(db: Database) -> None:
    project = make_project(db)
    assert project.secret.startswith("clx_sk_") and project.public.startswith("clx_pk_")
    assert len(project.secret) >= 7 + 43
    with db.read() as session:
        rows = session.scalars(select(ApiKey)).all()
    stored = " ".join(f"{r.key_hash} {r.prefix} {r.name}" for r in rows)
    assert project.secret not in stored and project.public not in stored
    assert project.secret[7:20] not in stored  # not even a usable fragment
    assert {r.key_hash for r in rows} == {
        keys.hash_key(project.secret),
        keys.hash_key(project.public),
    }


def test_authenticate_and_revoke(db: Database) -> None:
    project = make_project(db)
    with db.read() as session:
        principal = auth.authenticate(session, project.id, project.secret)
        assert principal.kind == "secret" and principal.project_id == project.id
        assert auth.authenticate(session, project.id, project.public).kind == "public"
    with db.write() as session:
        key_id = auth.authenticate(session, project.id, project.secret).key_id
        auth.revoke_key(session, project.id, key_id)
    with db.read() as session:
        try:
            auth.authenticate(session, project.id, project.secret)
        except AuthenticationError as exc:
            assert exc.status_code == 401
        else:
            raise AssertionError("a revoked key still authenticates")


def test_keys_are_unique(db: Database) -> None:
    made = {keys.generate_key("secret") for _ in range(1000)}
    assert len(made) == 1000
