"""The previous release (CHANGELOG.md's, a ``git worktree`` of its commit) on the
databases this code migrated to its head, and beside this code's services during a
rolling update: every referral reaches its final state, nothing is dead-lettered,
nothing is done twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.release import previous_release
from shared.settings import ServiceName, Settings
from tests.faults.previous_release import SITECUSTOMIZE, Releases, migrate_to_head, worktree
from tests.faults.test_graceful_handover import dead_lettered

pytestmark = pytest.mark.faults

FIRST = 8
AFTER = 4  # referrals sent once the new replica is the only one


@pytest.fixture(scope="module")
def previous_tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with worktree(previous_release(), tmp_path_factory.mktemp("previous")) as tree:
        yield tree


@pytest.fixture
async def releases(
    settings: Settings, postgres: Any, tmp_path: Path, previous_tree: Path
) -> AsyncIterator[Releases]:
    urls = {s.value: await postgres.create(s.value) for s in ServiceName}
    await migrate_to_head(urls)
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(SITECUSTOMIZE)
    running = Releases(settings, urls, tmp_path / "logs", previous_tree, shim)
    try:
        yield running
    finally:
        await running.stop()
        for name, log in running.logs().items():
            if "Traceback" in log or "dead-lettered" in log:
                print(f"--- {name} ---\n{log[-4000:]}")


async def steady_flow(releases: Releases, rolled: asyncio.Event, seed: int) -> None:
    """Referrals one after another while the roll goes on, and a few after it."""
    while not rolled.is_set():
        await releases.burst(1, seed=seed + len(releases.references), pause=0.3)
    await releases.burst(AFTER, seed=seed, pause=0.1)


async def roll_under_flow(releases: Releases, service: ServiceName, seed: int) -> None:
    rolled = asyncio.Event()
    flow = asyncio.create_task(steady_flow(releases, rolled, seed))
    try:
        await asyncio.sleep(0.5)
        await releases.roll(service)
    finally:
        rolled.set()
        await flow


async def check_everything_arrived(releases: Releases, total: int) -> None:
    await releases.settle(timeout=120)
    states = releases.final_states()
    assert states["none"] == 0 and sum(states.values()) == total, states
    duplicates = releases.duplicates()
    assert duplicates == {}, releases.story(duplicates)
    assert await dead_lettered(releases.settings) == {s.value: 0 for s in ServiceName}


async def test_previous_release_on_head_databases_then_the_scheduler_rolled_to_new(
    releases: Releases,
) -> None:
    await releases.start_with(new=set())
    # The previous release's four services alone, on the databases migrated to the head.
    await releases.burst(FIRST, seed=1)
    await check_everything_arrived(releases, FIRST)
    # A steady flow while the scheduler is replaced by this code's: then the scheduler
    # new, the others old.
    await roll_under_flow(releases, ServiceName.SCHEDULER, seed=2)
    await check_everything_arrived(releases, len(releases.references))
    sources = {e.source for e in releases.observer.events if e.type == "slot.assigned"}
    assert "scheduler" in sources and any(s.startswith("scheduler@") for s in sources), sources


async def test_intake_at_the_previous_release_the_rest_new_then_intake_rolled(
    releases: Releases,
) -> None:
    await releases.start_with(new={s for s in ServiceName if s is not ServiceName.INTAKE})
    await roll_under_flow(releases, ServiceName.INTAKE, seed=3)
    await check_everything_arrived(releases, len(releases.references))
    sources = {e.source for e in releases.observer.events if e.type == "referral.received"}
    assert "intake" in sources and any(s.startswith("intake@") for s in sources), sources
