"""Fixtures: a migrated database (SQLite file, or PostgreSQL when CLARION_TEST_DATABASE_URL is
set), and a real Clarion server on a loopback port."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import SecretStr
from sqlalchemy import text
from typer.testing import CliRunner

from clarion.app import create_app
from clarion.auth import service as auth
from clarion.auth.keys import SCOPES
from clarion.config import Settings, get_settings
from clarion.storage.db import Database
from clarion.storage.migrate import upgrade
from clarion.storage.models import Base

PG_URL = os.environ.get("CLARION_TEST_DATABASE_URL", "")


def pytest_report_header() -> str:
    return f"clarion database: {'PostgreSQL ' + PG_URL if PG_URL else 'SQLite (temporary files)'}"


@pytest.fixture(scope="session")
def _template(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Migrate once per session: a template SQLite file, or the PostgreSQL test database."""
    if PG_URL:
        upgrade(PG_URL)
        return PG_URL
    path = tmp_path_factory.mktemp("template") / "clarion.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    return url


@pytest.fixture
def db_url(_template: str, tmp_path: Path) -> str:
    if PG_URL:
        db = Database(PG_URL)
        tables = ", ".join(t.name for t in reversed(Base.metadata.sorted_tables))
        with db.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        db.dispose()
        return PG_URL
    path = tmp_path / "clarion.db"
    shutil.copy(_template.removeprefix("sqlite:///"), path)
    return f"sqlite:///{path}"


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    yield database
    database.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Project:
    id: str
    secret: str
    public: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Clix-Project-ID": self.id, "X-Clix-API-Key": self.secret}

    @property
    def sdk_headers(self) -> dict[str, str]:
        return {"X-Clix-Project-ID": self.id, "X-Clix-API-Key": self.public}


def make_project(
    db: Database, name: str = "test", url_schemes: tuple[str, ...] = ("app", "myshop")
) -> Project:
    with db.write() as session:
        project = auth.create_project(session, name, url_schemes)
        secret = auth.create_key(session, project.id, "secret", "", SCOPES).plaintext
        public = auth.create_key(session, project.id, "public").plaintext
    return Project(project.id, secret, public)


@dataclass
class Server:
    url: str
    settings: Settings
    client: httpx.Client
    app: Any = None

    def wait_done(self, project: Project, trigger_id: str, timeout: float = 15) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            body: dict[str, Any] = self.client.get(
                f"/api/v1/triggers/{trigger_id}", headers=project.headers
            ).json()
            if body["status"] in ("completed", "failed") or time.monotonic() > deadline:
                return body
            time.sleep(0.02)

    def fire(
        self, project: Project, campaign_id: str, body: Any = None
    ) -> tuple[str, dict[str, Any]]:
        """Trigger, check the Clix answer ({"trigger_id"} only), wait for the end; returns the
        trigger id and its final status."""
        r = self.client.post(
            f"/api/v1/campaigns/{campaign_id}:trigger", json=body, headers=project.headers
        )
        assert r.status_code == 200, r.text
        assert set(r.json()) == {"trigger_id"}
        trigger_id: str = r.json()["trigger_id"]
        return trigger_id, self.wait_done(project, trigger_id)

    def messages(self, project: Project, trigger_id: str, **params: Any) -> list[dict[str, Any]]:
        r = self.client.get(
            f"/api/v1/triggers/{trigger_id}/messages", headers=project.headers, params=params
        )
        assert r.status_code == 200, r.text
        return list(r.json()["messages"])


def settings_for(db_url: str, var_dir: Path, **overrides: Any) -> Settings:
    return Settings(
        database_url=SecretStr(db_url),
        var_dir=var_dir,
        demo=False,
        poll_interval_seconds=0.05,
        **overrides,
    )


@pytest.fixture
def server_factory(db_url: str, tmp_path: Path) -> Iterator[Any]:
    started: list[tuple[uvicorn.Server, threading.Thread, httpx.Client]] = []

    def start(**overrides: Any) -> Server:
        settings = settings_for(db_url, tmp_path / "var", **overrides)
        port = free_port()
        application = create_app(settings)
        config = uvicorn.Config(
            application, host="127.0.0.1", port=port, log_level="warning", lifespan="on"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        started.append((server, thread, client))
        return Server(url=f"http://127.0.0.1:{port}", settings=settings, client=client,
                      app=application)  # fmt: skip

    yield start
    for server, thread, client in started:
        client.close()
        server.should_exit = True
        thread.join(10)


def run_worker_until_idle(server: Server) -> None:
    """Run the pipeline on the test's thread, against the server's database, until idle."""
    from clarion.delivery.pipeline import Pipeline
    from clarion.delivery.providers.registry import build_registry
    from clarion.runner.embedded import EmbeddedRunner

    db = Database(server.settings.resolved_database_url())
    pipeline = Pipeline(db, build_registry(server.settings, db), server.settings.chunk_size)
    EmbeddedRunner(db, pipeline, threads=1, lease_seconds=60, poll_interval=0.05).run_until_idle()
    db.dispose()


@pytest.fixture
def server(server_factory: Any) -> Server:
    started: Server = server_factory()
    return started


@pytest.fixture
def cli_env(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("CLARION_DATABASE_URL", db_url)
    monkeypatch.setenv("CLARION_VAR_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()
