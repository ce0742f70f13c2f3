"""API keys: shown once, stored only as a hash, prefixed and checksummed, scoped, rotated
with an overlap, revocable, their last use recorded; and the audit log."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from clarion import cache, cli
from clarion.auth import keys
from clarion.auth import service as auth
from clarion.errors import AuthenticationError
from clarion.ratelimit import gate
from clarion.storage.db import Database
from clarion.storage.models import ApiKey, utcnow
from tests.conftest import Server, make_project
from tests.helpers import PROPS, ok, store_pickup, trigger


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


def test_the_checksum_lets_a_scanner_recognise_keys_offline(tmp_path: Path, cli_env: Any) -> None:
    key = keys.generate_key("secret")
    assert keys.looks_like_key(key) and len(key) == 7 + 43 + 6
    for i in range(7, len(key)):  # any one character changed breaks it
        changed = key[:i] + ("A" if key[i] != "A" else "B") + key[i + 1 :]
        assert not keys.looks_like_key(changed)
    assert not keys.looks_like_key("clx_sk_" + "a" * 49)  # the right shape is not enough
    leaked = tmp_path / "settings.py"
    leaked.write_text(f'DEBUG = True\nCLIX_API_KEY = "{key}"\nOTHER = "clx_sk_{"a" * 49}"\n')
    result = cli_env.invoke(cli.app, ["keys", "scan", str(leaked)])
    assert result.exit_code == 1
    assert f"{leaked}:2: a Clarion secret key ({key[:11]}" in result.output
    assert key not in result.output and ":3:" not in result.output
    clean = tmp_path / "clean.txt"
    clean.write_text("nothing here\n")
    result = cli_env.invoke(cli.app, ["keys", "scan", str(clean)])
    assert result.exit_code == 0 and "no Clarion key found" in result.output


def test_scopes_are_least_privilege_by_default(server: Server, db: Database) -> None:
    project = make_project(db)
    campaign_id = store_pickup(server.client, project)
    c = server.client

    def key(scopes: list[str] | None, kind: str = "secret") -> dict[str, str]:
        body: dict[str, Any] = {"kind": kind, "name": f"{scopes}"}
        if scopes is not None:
            body["scopes"] = scopes
        made = ok(c.post("/api/v1/keys", json=body, headers=project.headers), 201)
        assert keys.looks_like_key(made["key"])
        return {"X-Clix-Project-ID": project.id, "X-Clix-API-Key": made["key"]}

    default = key(None)
    fired = trigger(c, project, campaign_id, {"properties": PROPS}, headers=default)
    trigger_id = ok(fired)["trigger_id"]
    assert c.get(f"/api/v1/triggers/{trigger_id}", headers=default).status_code == 200
    refused = c.get("/api/v1/campaigns", headers=default)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "insufficient_scope"
    assert "'read' scope" in refused.json()["error"]["message"]

    read = key(["read"])
    assert c.get(f"/api/v1/campaigns/{campaign_id}", headers=read).status_code == 200
    assert c.get(f"/api/v1/triggers/{trigger_id}", headers=read).status_code == 200
    assert trigger(c, project, campaign_id, {"properties": PROPS}, headers=read).status_code == 403
    assert c.post(f"/api/v1/campaigns/{campaign_id}:pause", headers=read).status_code == 403
    assert c.get("/api/v1/keys", headers=read).status_code == 403

    ingest = key(["ingest"])
    user = {"project_user_id": "new-user", "properties": {"a": 1}}
    assert c.post("/api/v1/users", json=user, headers=ingest).status_code == 200
    assert c.get("/api/v1/campaigns", headers=ingest).status_code == 403
    # A public key has ingest alone, and only for the SDK endpoints.
    public = key(["admin"], kind="public")
    assert c.post("/api/v1/users", json=user, headers=public).status_code == 403
    device = {"devices": [{"id": "d-1", "platform": "IOS"}]}
    assert c.post("/api/v1/devices", json=device, headers=public).status_code == 200

    listed = {k["name"]: k for k in ok(c.get("/api/v1/keys", headers=project.headers))["keys"]}
    assert listed["None"]["scopes"] == ["trigger"]
    assert listed["['admin']"]["kind"] == "public" and listed["['admin']"]["scopes"] == ["ingest"]
    bad = c.post("/api/v1/keys", json={"scopes": ["root"]}, headers=project.headers)
    assert bad.status_code == 400


def test_rotation_overlaps_then_the_old_key_ends(server: Server, db: Database) -> None:
    project = make_project(db)
    c = server.client
    made = ok(c.post("/api/v1/keys", json={"name": "backend", "scopes": ["read"]},
                     headers=project.headers), 201)  # fmt: skip
    old = {"X-Clix-Project-ID": project.id, "X-Clix-API-Key": made["key"]}
    rotated = ok(c.post(f"/api/v1/keys/{made['id']}:rotate", json={"overlap_seconds": 3600},
                        headers=project.headers), 201)  # fmt: skip
    new = {"X-Clix-Project-ID": project.id, "X-Clix-API-Key": rotated["key"]}
    assert rotated["scopes"] == ["read"] and rotated["name"] == "backend"
    assert c.get("/api/v1/campaigns", headers=old).status_code == 200  # the overlap
    assert c.get("/api/v1/campaigns", headers=new).status_code == 200
    listed = {k["id"]: k for k in ok(c.get("/api/v1/keys", headers=project.headers))["keys"]}
    ends = datetime.fromisoformat(listed[made["id"]]["expires_at"])
    assert timedelta(minutes=59) < ends - utcnow() <= timedelta(hours=1)

    # At the end of the overlap the old key stops (moved there rather than waited for).
    with db.write() as session:
        session.execute(update(ApiKey).where(ApiKey.id == made["id"])
                        .values(expires_at=utcnow() - timedelta(seconds=1)))  # fmt: skip
    cache.keys.clear()
    assert c.get("/api/v1/campaigns", headers=old).status_code == 401
    assert c.get("/api/v1/campaigns", headers=new).status_code == 200
    # Rotating with no overlap ends it at once; a revoked key cannot be rotated.
    again = ok(c.post(f"/api/v1/keys/{rotated['id']}:rotate", json={"overlap_seconds": 0},
                      headers=project.headers), 201)  # fmt: skip
    assert c.get("/api/v1/campaigns", headers=new).status_code == 401
    newest = {"X-Clix-Project-ID": project.id, "X-Clix-API-Key": again["key"]}
    assert c.get("/api/v1/campaigns", headers=newest).status_code == 200
    ok(c.post(f"/api/v1/keys/{again['id']}:revoke", headers=project.headers))
    r = c.post(f"/api/v1/keys/{again['id']}:rotate", json={}, headers=project.headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "key_revoked"
    assert c.get("/api/v1/campaigns", headers=newest).status_code == 401


def test_keys_record_their_last_use(
    server: Server, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_project(db)
    c = server.client
    listed = ok(c.get("/api/v1/keys", headers=project.headers))["keys"]
    public = next(k for k in listed if k["kind"] == "public")
    assert public["last_used_at"] is None
    monkeypatch.setattr(gate, "TOUCH_EVERY", 0.0)  # write at once rather than once a minute
    device = {"devices": [{"id": "d-1", "platform": "IOS"}]}
    ok(c.post("/api/v1/devices", json=device, headers=project.sdk_headers))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        listed = ok(c.get("/api/v1/keys", headers=project.headers))["keys"]
        used = next(k for k in listed if k["id"] == public["id"])["last_used_at"]
        if used is not None:
            break
        time.sleep(0.05)
    assert used is not None
    assert abs(datetime.fromisoformat(used) - utcnow()) < timedelta(minutes=1)


def test_the_audit_log_records_keys_and_campaign_changes(server: Server, db: Database) -> None:
    project = make_project(db)  # two keys made "from the CLI"
    c = server.client
    campaign_id = store_pickup(c, project)
    with db.read() as session:
        caller = "key:" + auth.authenticate(session, project.id, project.secret).key_id
    made = ok(c.post("/api/v1/keys", json={"name": "ci"}, headers=project.headers), 201)
    ok(c.post(f"/api/v1/keys/{made['id']}:revoke", headers=project.headers))
    ok(c.post(f"/api/v1/keys/{made['id']}:revoke", headers=project.headers))  # no 2nd entry
    ok(c.post(f"/api/v1/campaigns/{campaign_id}:pause", headers=project.headers))

    page = ok(c.get("/api/v1/audit-log", params={"limit": 2}, headers=project.headers))
    rest = ok(c.get("/api/v1/audit-log", params={"before": page["next_before"]},
                    headers=project.headers))  # fmt: skip
    assert rest["next_before"] is None
    entries = page["entries"] + rest["entries"]  # newest first
    assert [(e["action"], e["actor"], e["target_id"]) for e in entries] == [
        ("campaign.status_changed", caller, campaign_id),
        ("key.revoked", caller, made["id"]),
        ("key.created", caller, made["id"]),
        ("campaign.created", caller, campaign_id),
        ("key.created", "cli", entries[4]["target_id"]),
        ("key.created", "cli", entries[5]["target_id"]),
    ]
    assert entries[0]["details"] == {"before": "active", "after": "paused"}
    assert entries[2]["details"] == {"kind": "secret", "name": "ci", "scopes": ["trigger"]}
    assert all(made["key"] not in str(e) for e in entries)  # never the key itself

    # Another project sees only its own entries; a key without admin may not read the log.
    other = make_project(db, "other")
    theirs = ok(c.get("/api/v1/audit-log", headers=other.headers))["entries"]
    assert {e["action"] for e in theirs} == {"key.created"} and len(theirs) == 2
    read = ok(c.post("/api/v1/keys", json={"scopes": ["read"]}, headers=project.headers), 201)
    headers = {"X-Clix-Project-ID": project.id, "X-Clix-API-Key": read["key"]}
    assert c.get("/api/v1/audit-log", headers=headers).status_code == 403
