"""Back up every database of a deployment into a folder, and restore it (``aiguillage
backup`` / ``aiguillage restore``).

A backup is a folder: one file per database (SQLite's online backup API for the
embedded databases, ``pg_dump --format=custom`` for PostgreSQL) and ``manifest.json``,
which says when the backup began and when each database was copied. No URL and no
password is written in it.

A restore copies each file into the database the settings name (a fresh one: it refuses
to overwrite a database that has tables, unless forced), then makes each service's
outbox publish again what it had published since a margin before the backup began. The
backup is not one instant across the services: each database is copied at its own
moment, and what a service consumed after its copy was acknowledged on the broker and is
gone from its queue. Its producer's outbox still holds it (the rows stay once published,
until the purge), so published again it reaches the consumer a second time: a consumer
that had it in its copy drops it by its inbox, one that had not applies it. What came
from outside after the backup began (a referral, a centre's report, the ARS's decision)
is in no outbox: its sender sends it again, and intake takes a referral it already has
as a duplicate (the referrer's reference). docs/operations/backup.md says what a
restore guarantees and what it does not.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, inspect, update
from sqlalchemy.engine import URL, make_url

from shared.db import Database
from shared.messaging_tables import outbox
from shared.settings import ServiceName, Settings

MANIFEST = "manifest.json"
FORMAT = 1
# What a restore publishes again: the outbox rows published from this long before the
# backup began (an event may wait in a queue before it is consumed; the consumers' inboxes
# drop what they already had). Shorter than the purge's retention of inboxes and outboxes.
DEFAULT_REPLAY_MARGIN = timedelta(minutes=10)


class BackupError(Exception):
    """What stops a backup or a restore, said in one line."""


@dataclass(frozen=True)
class Target:
    """One database of the deployment: its name and its SQLAlchemy URL."""

    name: str
    url: str

    @property
    def is_sqlite(self) -> bool:
        return make_url(self.url).get_backend_name() == "sqlite"

    @property
    def path(self) -> Path:
        database = make_url(self.url).database
        if not database:
            raise BackupError(f"{self.name}: an in-memory SQLite database cannot be backed up")
        return Path(database)

    def libpq(self) -> tuple[str, dict[str, str]]:
        """The URL as pg_dump reads it, and the password as PGPASSWORD (never in argv)."""
        url = make_url(self.url)
        env = {"PGPASSWORD": url.password} if url.password else {}
        query = dict(url.query)
        ssl = query.pop("ssl", None)
        if isinstance(ssl, str):
            query["sslmode"] = ssl
        plain = URL.create(
            "postgresql",
            username=url.username,
            host=url.host,
            port=url.port,
            database=url.database,
            query=query,
        )
        return plain.render_as_string(hide_password=False), env


# The order of the copies: downstream first. A referral's id is made by intake, an
# appointment's by the scheduler; copied before the service that made it, a database
# never knows an id its maker's copy does not (what it learnt came from a commit of the
# maker's, earlier than the maker's copy). The other way round, regulation's copy could
# hold a case for a referral that intake's earlier copy lacks, and the referral sent
# again would be a second one under a new id.
BACKUP_ORDER = ("notifier", "scheduler", "regulation", "intake", "hubsante", "console")


def targets(settings: Settings) -> list[Target]:
    """Every database: the four services', the Hub Santé door's, the console's, in the
    order of the copies."""
    from aiguillage.hubsante.store import database_url as hubsante_url

    urls = {s.value: settings.database_url(s) for s in ServiceName}
    urls["console"] = settings.console_database()
    urls["hubsante"] = hubsante_url(settings)
    return [Target(name, urls[name]) for name in BACKUP_ORDER]


def _now() -> datetime:
    return datetime.now(UTC)


def _sqlite_copy(source: Path, destination: Path) -> None:
    """SQLite's online backup: a consistent copy while the service writes."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(destination, timeout=30)
    try:
        with dst:
            src.backup(dst, pages=256)
        # The copy is one file: no write-ahead log beside it (the service sets its own).
        dst.execute("PRAGMA journal_mode=DELETE")
    finally:
        dst.close()
        src.close()


def _run(command: list[str], env: Mapping[str, str], what: str) -> None:
    done = subprocess.run(
        command, env={**os.environ, **env}, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise BackupError(f"{what}: {done.stderr.strip() or done.stdout.strip()}")


def backup(
    settings: Settings, folder: Path, say: Callable[[str], None] = lambda _: None
) -> dict[str, Any]:
    """Copy every database into ``folder`` (new or empty); returns the manifest."""
    if folder.exists() and any(folder.iterdir()):
        raise BackupError(f"{folder} is not empty: a backup goes into a folder of its own")
    folder.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "namespace": settings.namespace,
        "started_at": _now().isoformat(),
        "databases": {},
    }
    for target in targets(settings):
        if target.is_sqlite:
            if not target.path.exists():
                say(f"{target.name}: no database at {target.path}, skipped")
                continue
            file = f"{target.name}.db"
            _sqlite_copy(target.path, folder / file)
        else:
            file = f"{target.name}.dump"
            url, env = target.libpq()
            command = ["pg_dump", "--format=custom", "--no-owner", "--file", str(folder / file)]
            _run([*command, url], env, f"{target.name}: pg_dump")
        kind = "sqlite" if target.is_sqlite else "postgresql"
        manifest["databases"][target.name] = {"kind": kind, "file": file, "at": _now().isoformat()}
        say(f"{target.name}: {kind}, {file}")
    manifest["finished_at"] = _now().isoformat()
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_manifest(folder: Path) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"{folder}: no readable {MANIFEST} ({exc})") from exc
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{folder}: backup format {manifest.get('format')!r}, not {FORMAT}")
    return manifest


async def _has_tables(url: str) -> bool:
    database = Database(url)
    try:
        async with database.engine.connect() as connection:
            names = await connection.run_sync(lambda c: inspect(c).get_table_names())
        return bool(names)
    finally:
        await database.dispose()


async def _replay(url: str, since: datetime) -> int:
    """Mark the outbox rows published since ``since`` as not yet published."""
    database = Database(url)
    try:
        async with database.engine.connect() as connection:
            names = await connection.run_sync(lambda c: inspect(c).get_table_names())
        if "outbox" not in names:
            return 0
        async with database.transaction() as session:
            result = await session.execute(
                update(outbox)
                .where(and_(outbox.c.published_at >= since, outbox.c.set_aside_at.is_(None)))
                .values(published_at=None)
            )
            return int(getattr(result, "rowcount", 0) or 0)
    finally:
        await database.dispose()


def _restore_one(target: Target, entry: Mapping[str, Any], folder: Path, force: bool) -> None:
    source = folder / str(entry["file"])
    if (entry["kind"] == "sqlite") != target.is_sqlite:
        raise BackupError(
            f"{target.name}: the backup is {entry['kind']}, the database the settings name is "
            "not (restore into the same kind, then move the data)"
        )
    exists = not target.is_sqlite or target.path.exists()
    if not force and exists and asyncio.run(_has_tables(target.url)):
        raise BackupError(
            f"{target.name}: its database already has tables; restore into a fresh one "
            "(or --force to overwrite it)"
        )
    if target.is_sqlite:
        for suffix in ("-wal", "-shm"):
            Path(f"{target.path}{suffix}").unlink(missing_ok=True)
        target.path.unlink(missing_ok=True)
        _sqlite_copy(source, target.path)
        return
    url, env = target.libpq()
    command = ["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error"]
    if force:
        command += ["--clean", "--if-exists"]
    _run([*command, "--dbname", url, str(source)], env, f"{target.name}: pg_restore")


def restore(
    settings: Settings,
    folder: Path,
    *,
    replay_margin: timedelta = DEFAULT_REPLAY_MARGIN,
    force: bool = False,
    say: Callable[[str], None] = lambda _: None,
) -> dict[str, int]:
    """Restore every database of the backup into the databases the settings name (the
    services stopped), then mark for publishing again what each outbox published since
    ``replay_margin`` before the backup began. Returns the rows marked, per database."""
    manifest = read_manifest(folder)
    by_name = {t.name: t for t in targets(settings)}
    since = datetime.fromisoformat(manifest["started_at"]) - replay_margin
    replayed: dict[str, int] = {}
    for name, entry in manifest["databases"].items():
        target = by_name.get(name)
        if target is None:
            raise BackupError(f"{name}: a database this version does not know")
        _restore_one(target, entry, folder, force)
        replayed[name] = asyncio.run(_replay(target.url, since))
        say(f"{name}: restored; {replayed[name]} outbox events to publish again")
    return replayed
