"""The previous release's code beside this one's: a ``git worktree`` of its commit (read
from CHANGELOG.md), its services run on this interpreter with ``PYTHONPATH`` at the
worktree, on databases this code migrated to its head."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aiguillage.demo import wait_for_drain
from aiguillage.processes import ServiceProcesses
from shared.db import Database
from shared.migrations import upgrade
from shared.publisher import EventPublisher
from shared.release import Release
from shared.settings import ServiceName, Settings
from shared.topology import declare_topology
from tests.faults.conftest import CENTRES, Cluster
from tests.helpers import centre

ROOT = Path(__file__).resolve().parents[2]

# The previous release (0.2.0) stops at start on a database a later release migrated:
# Alembic does not know the head's revision. From 0.3.0 a service runs on such a database
# as it is (shared.migrations.upgrade); the previous release's processes are given that
# behaviour here, and nothing else of this code.
SITECUSTOMIZE = """
import shared.migrations as _migrations
from alembic.runtime.migration import MigrationContext as _Context
from alembic.script import ScriptDirectory as _Scripts

_upgrade = _migrations.upgrade


async def _tolerant_upgrade(database, script_location, revision="head"):
    def ahead(connection):
        config = _migrations._config(script_location, connection)
        known = {s.revision for s in _Scripts.from_config(config).walk_revisions()}
        return set(_Context.configure(connection).get_current_heads()) - known

    async with database.engine.connect() as connection:
        if await connection.run_sync(ahead):
            return
    await _upgrade(database, script_location, revision)


_migrations.upgrade = _tolerant_upgrade
"""


@contextmanager
def worktree(release: Release, parent: Path) -> Iterator[Path]:
    """A checkout of ``release``'s commit, removed afterwards (``git worktree``)."""
    commit = release.commit
    assert commit is not None
    path = parent / f"aiguillage-{release.version}"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(path), commit],
        check=True,
        capture_output=True,
    )
    try:
        yield path
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)],
            capture_output=True,
        )


async def migrate_to_head(urls: dict[str, str]) -> None:
    """Each service's database migrated by this code (its head), before any service."""
    for service, url in urls.items():
        database = Database(url)
        try:
            await upgrade(database, f"services.{service}:migrations")
        finally:
            await database.dispose()


class Releases(Cluster):
    """The four services, each either at the previous release (``self.old``) or at this
    code (``self.processes``), on the fault suite's databases and observer."""

    def __init__(
        self, settings: Settings, urls: dict[str, str], logs: Path, tree: Path, shim: Path
    ) -> None:
        super().__init__(settings, urls, logs / "new")
        env = {k: v for k, v in self.processes.env.items() if k != "AIGUILLAGE_PORT_FILE_DIR"}
        env["PYTHONPATH"] = os.pathsep.join([str(shim), str(tree)])
        self.old = ServiceProcesses(env, logs / "old", cwd=tree)

    async def start_with(self, new: set[ServiceName]) -> None:
        """The services in ``new`` at this code, the others at the previous release."""
        await declare_topology(self.settings.broker_url, self.settings.namespace)
        await self.observer.start()
        old = [s for s in ServiceName if s not in new]
        self.old.start(*old, wait=False)
        if new:
            self.processes.start(*new, wait=False)
        # Listening comes after the consumers started: each queue has its consumer.
        await asyncio.to_thread(self.old.wait_listening, *old)
        if new:
            await asyncio.to_thread(self.processes.wait_listening, *new)
        async with EventPublisher(self.settings.broker_url, self.settings.namespace, "ars") as ars:
            for centre_id, insee in CENTRES:
                await ars.publish(centre(centre_id, insee, boxes=6), correlation_id=centre_id)
        await wait_for_drain(
            self.settings.broker_url, f"{self.settings.namespace}.scheduler.centres"
        )

    async def roll(self, service: ServiceName) -> float:
        """A rolling update of ``service``: the new replica starts and is ready, then the
        old one is sent SIGTERM and hands over; how long the old one took to stop."""
        await asyncio.to_thread(self.processes.start, service)
        started = time.monotonic()
        code = await asyncio.to_thread(self.old.terminate, service)
        assert code == 0, self.old.log(service)[-3000:]
        return time.monotonic() - started

    def logs(self) -> dict[str, str]:
        found = {}
        for service in ServiceName:
            found[f"old {service.value}"] = self.old.log(service)
            found[f"new {service.value}"] = self.processes.log(service)
        return found

    async def stop(self) -> None:
        # Both releases' processes told at once, not one set after the other.
        await asyncio.gather(
            asyncio.to_thread(self.old.stop), asyncio.to_thread(self.processes.stop)
        )
        await super().stop()
