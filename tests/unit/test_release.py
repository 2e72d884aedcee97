"""Releases: one version everywhere, the changelog's commits read back, the release in
the health endpoint, the CLI and the events' source; a database ahead of the code."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text

from shared.db import Database
from shared.http import add_health_routes
from shared.migrations import upgrade
from shared.outbox import outbox_row
from shared.release import (
    CHANGELOG,
    VERSION,
    Release,
    previous_release,
    releases,
    source_name,
    versioned_source,
)
from tests.helpers import centre

ROOT = Path(__file__).resolve().parents[2]


def test_one_version_in_pyproject_the_code_and_the_changelog() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["version"] == VERSION
    assert CHANGELOG == ROOT / "CHANGELOG.md"
    assert releases()[0].version == VERSION, "the newest release listed is this code's"


def test_the_changelog_names_the_previous_release_and_its_commit() -> None:
    listed = {r.version: r for r in releases()}
    assert {"0.3.0", "0.2.0", "0.1.0"} <= set(listed)
    # Cut: its commit is the tree it was cut from, the changelog's commit on top of it.
    assert listed["0.3.0"].commit is not None
    done = subprocess.run(
        ["git", "-C", str(ROOT), "cat-file", "-t", listed["0.3.0"].commit],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 or done.stdout.strip() == "commit"
    assert previous_release() == Release("0.2.0", "2026-12-07", "9ce97fb")
    # The commit is one of this repository's (a clone with its history).
    done = subprocess.run(
        ["git", "-C", str(ROOT), "cat-file", "-t", "9ce97fb"], capture_output=True, text=True
    )
    assert done.returncode != 0 or done.stdout.strip() == "commit"


def test_a_cut_release_is_read_with_its_date_and_commit() -> None:
    changelog = (
        "# Changelog\n\n## [0.4.0] - Unreleased — commit: <to be written at release>\n"
        f"## [{VERSION}] - 2027-01-04 — commit: 0123abcd\n### Added\n- x\n"
        "## [0.2.0] - 2026-12-07 — commit: 9ce97fb\n## [not a release]\n"
    )
    assert [r.version for r in releases(changelog)] == ["0.4.0", VERSION, "0.2.0"]
    assert releases(changelog)[1] == Release(VERSION, "2027-01-04", "0123abcd")
    assert previous_release(changelog).commit == "9ce97fb"
    with pytest.raises(LookupError, match="names no commit"):
        previous_release(f"## [{VERSION}] - Unreleased\n## [0.2.0] - 2026-12-07\n")
    with pytest.raises(LookupError, match="does not list"):
        previous_release("## [0.2.0] - 2026-12-07 — commit: 9ce97fb\n")


def test_a_service_names_its_release_in_the_source_an_actor_does_not() -> None:
    assert versioned_source("scheduler") == f"scheduler@{VERSION}"
    assert versioned_source("gp") == "gp" and versioned_source("centre_15") == "centre_15"
    assert versioned_source(f"intake@{VERSION}") == f"intake@{VERSION}"
    assert source_name(f"scheduler@{VERSION}") == "scheduler" == source_name("scheduler")
    envelope, row = outbox_row(centre("rennes", "35238"), source="scheduler", correlation_id="c")
    assert envelope.source == f"scheduler@{VERSION}"
    assert f'"source":"scheduler@{VERSION}"' in row["body"]


def test_health_and_readiness_name_the_release() -> None:
    app = FastAPI()

    async def ok() -> bool:
        return True

    add_health_routes(app, {"broker": ok}, version=VERSION)
    with TestClient(app) as client:
        assert client.get("/health").json() == {"status": "ok", "version": VERSION}
        assert client.get("/ready").json()["version"] == VERSION


def test_the_command_says_its_release() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "aiguillage", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"aiguillage {VERSION}"


_ENV = (
    "from sqlalchemy import MetaData\nfrom shared.migrations import run_env\nrun_env(MetaData())\n"
)
_REVISION = """revision = "0001"
down_revision = None
from alembic import op
import sqlalchemy as sa
def upgrade() -> None:
    op.create_table("kept", sa.Column("id", sa.Integer, primary_key=True))
"""


async def test_a_database_a_later_release_migrated_is_used_as_it_is(tmp_path: Path) -> None:
    scripts = tmp_path / "migrations"
    (scripts / "versions").mkdir(parents=True)
    (scripts / "env.py").write_text(_ENV)
    (scripts / "versions" / "0001_kept.py").write_text(_REVISION)
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'service.db'}")
    try:
        await upgrade(database, str(scripts))
        async with database.engine.begin() as connection:
            await connection.execute(text("UPDATE alembic_version SET version_num = '0099_later'"))
        await upgrade(database, str(scripts))  # no error: this code runs on it as it is
        async with database.engine.connect() as connection:
            version = await connection.execute(text("SELECT version_num FROM alembic_version"))
            assert version.scalar_one() == "0099_later"
            await connection.execute(text("SELECT id FROM kept"))
    finally:
        await database.dispose()
