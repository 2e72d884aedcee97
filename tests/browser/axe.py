"""axe-core in the console's pages: injected by the test (Selenium evaluates it through
the browser's DevTools, which the page's Content-Security-Policy does not govern), run
on the whole document, and no serious or critical violation let through.

axe-core comes from npm, as tests/browser/package.json pins it (`make setup` runs
`npm ci` there); it is never copied into the repository.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

AXE = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")


@cache
def _source() -> str:
    if not AXE.exists():
        raise AssertionError(
            f"axe-core is missing ({AXE}): run `make setup` (npm ci in tests/browser)"
        )
    return AXE.read_text()


def violations(driver: Any) -> list[dict[str, Any]]:
    """The serious and critical violations axe-core finds in the page as it stands."""
    if not driver.execute_script("return !!window.axe"):
        driver.execute_script(_source())
    result = driver.execute_async_script(
        """
        var done = arguments[arguments.length - 1];
        window.axe.run(document, { resultTypes: ["violations"] })
          .then(function (r) { done(r.violations); })
          .catch(function (e) {
            done([{ id: "axe-error", impact: "critical", help: String(e), nodes: [] }]);
          });
        """
    )
    return [v for v in result if v.get("impact") in BLOCKING]


def assert_accessible(driver: Any, what: str = "") -> None:
    found = violations(driver)
    if found:
        lines = [
            f"{v['id']} ({v['impact']}): {v['help']} — "
            + "; ".join(str(n.get("target")) for n in v.get("nodes", [])[:5])
            for v in found
        ]
        raise AssertionError(f"axe-core on {what or driver.current_url}:\n" + "\n".join(lines))
