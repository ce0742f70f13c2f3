"""Run the test suite again on a fresh PostgreSQL database, then drop it.

Without a reachable server the PostgreSQL suite is skipped, loudly; under CI=true that is a
failure. The admin URL defaults to the local trust-auth server:
CLARION_TEST_PG_ADMIN_URL=postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import psycopg

ADMIN_URL = os.environ.get(
    "CLARION_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def main() -> int:
    try:
        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0]
        if os.environ.get("CI") == "true":
            print(f"FAIL: PostgreSQL suite cannot run in CI: {reason}", file=sys.stderr)
            return 1
        print(f"\n*** PostgreSQL suite SKIPPED: no server at {ADMIN_URL} ({reason}).")
        print("*** Only the SQLite suite ran. Start PostgreSQL and run `make test` again.\n")
        return 0
    name = f"clarion_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    base = ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    env = dict(os.environ, CLARION_TEST_DATABASE_URL=f"{base}/{name}")
    print(f"\n=== PostgreSQL suite on database {name} ===", flush=True)
    try:
        return subprocess.call([sys.executable, "-m", "pytest", *sys.argv[1:]], env=env)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


if __name__ == "__main__":
    sys.exit(main())
