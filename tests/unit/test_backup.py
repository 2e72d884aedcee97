"""`aiguillage backup` / `restore` on SQLite files, without the services: what is copied,
what is refused, which outbox rows a restore publishes again, what the manifest keeps."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from aiguillage.backup import BACKUP_ORDER, BackupError, Target, backup, restore
from shared.db import Database
from shared.messaging_tables import metadata, outbox
from shared.settings import Environment, ServiceName, Settings


def _settings(data: Path) -> Settings:
    return Settings(environment=Environment.DEVELOPMENT, data_dir=data)


async def _seed(url: str, rows: list[tuple[str, datetime | None]]) -> None:
    database = Database(url)
    try:
        async with database.engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        async with database.transaction() as session:
            for event_id, published in rows:
                await session.execute(
                    insert(outbox).values(
                        event_id=event_id,
                        event_type="referral.received",
                        routing_key="referral.received",
                        correlation_id="c",
                        body="{}",
                        created_at=published or datetime.now(UTC),
                        published_at=published,
                        attempts=0,
                    )
                )
    finally:
        await database.dispose()


async def _unpublished(url: str) -> set[str]:
    database = Database(url)
    try:
        async with database.transaction() as session:
            query = select(outbox.c.event_id).where(outbox.c.published_at.is_(None))
            return {r.event_id for r in (await session.execute(query)).all()}
    finally:
        await database.dispose()


def test_backup_then_restore_publishes_again_what_the_margin_covers(tmp_path: Path) -> None:
    source, restored = _settings(tmp_path / "data"), _settings(tmp_path / "restored")
    now = datetime.now(UTC)
    rows = [
        ("long-ago", now - timedelta(hours=2)),  # every consumer had it long before
        ("recent", now - timedelta(minutes=3)),  # a consumer's copy may lack it
        ("pending", None),  # not yet relayed at the copy: the relay sends it anyway
    ]
    for service in ServiceName:
        asyncio.run(_seed(source.database_url(service), rows))
    manifest = backup(source, tmp_path / "backup")
    # The console and the door have no database here: skipped, said, not failed.
    assert list(manifest["databases"]) == [n for n in BACKUP_ORDER if n in set(ServiceName)]

    replayed = restore(restored, tmp_path / "backup")
    assert replayed == {s.value: 1 for s in ServiceName}
    for service in ServiceName:
        assert asyncio.run(_unpublished(restored.database_url(service))) == {"recent", "pending"}
    # One file, no write-ahead log beside it.
    copy = tmp_path / "backup" / "intake.db"
    assert sqlite3.connect(copy).execute("PRAGMA journal_mode").fetchone() == ("delete",)


def test_restore_refuses_a_database_in_use_and_a_backup_goes_into_a_new_folder(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path / "data")
    asyncio.run(_seed(settings.database_url(ServiceName.INTAKE), []))
    backup(settings, tmp_path / "backup")
    with pytest.raises(BackupError, match="not empty"):
        backup(settings, tmp_path / "backup")
    with pytest.raises(BackupError, match="already has tables"):
        restore(settings, tmp_path / "backup")
    assert restore(settings, tmp_path / "backup", force=True) == {"intake": 0}


def test_the_manifest_and_pg_dump_s_arguments_hold_no_password() -> None:
    target = Target("intake", "postgresql+asyncpg://intake:s3cret@db:5432/intake?ssl=require")
    url, env = target.libpq()
    assert "s3cret" not in url and env == {"PGPASSWORD": "s3cret"}
    assert url == "postgresql://intake@db:5432/intake?sslmode=require"


def test_a_manifest_names_no_url(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "data")
    asyncio.run(_seed(settings.database_url(ServiceName.NOTIFIER), []))
    backup(settings, tmp_path / "backup")
    text = (tmp_path / "backup" / "manifest.json").read_text()
    assert str(tmp_path / "data") not in text
    assert json.loads(text)["databases"]["notifier"]["file"] == "notifier.db"
