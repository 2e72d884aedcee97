"""This code's release, and the releases ``CHANGELOG.md`` lists with their commits.

Tags may not travel with the branch: each release's commit is written in the changelog
beside its number (``## [0.2.0] - 2026-12-07 — commit: 9ce97fb``), and the tests that run
the previous release (a ``git worktree`` of its commit) read it from there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

VERSION = "0.3.0"
"""This code's release (``pyproject.toml``'s version; tests/unit/test_release.py)."""

CHANGELOG = Path(__file__).resolve().parents[1] / "CHANGELOG.md"

# "## [0.3.0] - 2026-12-08 — commit: 1a2b3c4", the date or the commit possibly not yet
# known ("unreleased", "<to be written at release>").
_HEADING = re.compile(
    r"^## \[(?P<version>\d+\.\d+\.\d+)\]"
    r"(?: - (?P<date>\d{4}-\d{2}-\d{2}|[A-Za-z]+))?"
    r"(?: [—-] commit: (?P<commit>[0-9a-f]{7,40}|<[^>]*>))?\s*$"
)

_SERVICES = frozenset({"intake", "regulation", "scheduler", "notifier"})


@dataclass(frozen=True, slots=True)
class Release:
    version: str
    date: str | None
    commit: str | None  # None: not written yet (this round's, until it is released)


def releases(changelog: str | None = None) -> list[Release]:
    """The releases of the changelog, newest first (its order)."""
    text = CHANGELOG.read_text(encoding="utf-8") if changelog is None else changelog
    found = []
    for line in text.splitlines():
        match = _HEADING.match(line)
        if match is None:
            continue
        commit = match["commit"]
        found.append(
            Release(
                version=match["version"],
                date=match["date"],
                commit=None if commit is None or commit.startswith("<") else commit,
            )
        )
    return found


def previous_release(changelog: str | None = None) -> Release:
    """The newest release before this code's (``VERSION``), with its commit: the one a
    rolling update runs beside this code."""
    listed = releases(changelog)
    versions = [r.version for r in listed]
    if VERSION not in versions:
        raise LookupError(f"CHANGELOG.md does not list this code's release {VERSION}")
    for release in listed[versions.index(VERSION) + 1 :]:
        if release.commit is not None:
            return release
    raise LookupError(f"CHANGELOG.md names no commit for a release before {VERSION}")


def versioned_source(source: str) -> str:
    """An event's ``source`` as a service writes it, ``scheduler@0.3.0``: who published
    it and at which release (a plain string, as every release's readers take it). An
    actor's name (``ars``, ``gp``) and an already versioned source are left as they are."""
    return f"{source}@{VERSION}" if source in _SERVICES else source


def source_name(source: str) -> str:
    """The publisher in a ``source``, without its release: ``scheduler@0.3.0`` ->
    ``scheduler`` (the previous release wrote ``scheduler``)."""
    return source.split("@", 1)[0]
