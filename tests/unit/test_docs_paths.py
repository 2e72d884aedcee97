"""The documentation names the modules that hold what it describes: every path of the
source tree a page cites exists, so that a move (issue 29's floor plan) cannot leave a
reader looking for a file that is gone. Results the benches and fault tests write
(``bench/results/``, ``tests/faults/figures.json``) are outputs, not sources: not checked.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CITED = re.compile(r"\b(?:services|shared|aiguillage|tests|bench)/[A-Za-z0-9_/.-]+\.(?:py|md|yaml)")
OUTPUTS = ("bench/results/", "tests/faults/figures.json")


def _pages() -> list[Path]:
    return [
        ROOT / "README.md",
        *sorted((ROOT / "docs").rglob("*.md")),
        *sorted((ROOT / "services").glob("*/README.md")),
    ]


def test_every_cited_path_exists() -> None:
    missing = {
        f"{page.relative_to(ROOT)}: {path}"
        for page in _pages()
        for path in CITED.findall(page.read_text())
        if not path.startswith(OUTPUTS) and not (ROOT / path).exists()
    }
    assert not missing, f"pages cite paths that do not exist: {sorted(missing)}"


def test_the_check_reads_the_pages() -> None:
    cited = [p for page in _pages() for p in CITED.findall(page.read_text())]
    assert len(cited) > 50
