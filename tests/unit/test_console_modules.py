"""The console as routers (issue 29): one module per actor, none importing another's,
and no import circle among the console's modules (the referrers' page and the app
once imported each other). Read from the source: every import counts, the ones
inside a function or under ``TYPE_CHECKING`` too."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

CONSOLE = Path(__file__).resolve().parents[2] / "aiguillage" / "console"
PACKAGE = "aiguillage.console"
ACTORS = frozenset({"dpo", "accounts", "ars", "centre", "centre15", "referrer", "patient"})


def console_modules() -> set[str]:
    return {p.stem for p in CONSOLE.glob("*.py") if p.stem != "__init__"}


def imported(source: str, modules: set[str]) -> set[str]:
    """The console's modules that ``source`` imports, by any form of import."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            head, _, rest = name.partition(f"{PACKAGE}.")
            if not head and rest.split(".")[0] in modules:
                found.add(rest.split(".")[0])
    return found


def import_graph() -> dict[str, set[str]]:
    modules = console_modules()
    return {m: imported((CONSOLE / f"{m}.py").read_text(), modules) - {m} for m in modules}


def test_the_graph_sees_every_kind_of_import() -> None:
    source = (
        "import aiguillage.console.ars\n"
        "from aiguillage.console import centre as c\n"
        "from aiguillage.console.referrer import x\n"
        "def f():\n    from aiguillage.console.patient import y\n"
        "from shared.geo import commune\n"
    )
    assert imported(source, set(ACTORS)) == {"ars", "centre", "referrer", "patient"}


def test_every_actor_has_its_module_and_router() -> None:
    assert console_modules() >= ACTORS
    for actor in ACTORS:
        assert "router = APIRouter()" in (CONSOLE / f"{actor}.py").read_text(), actor


def test_no_actor_module_imports_another() -> None:
    graph = import_graph()
    crossing = {actor: sorted(graph[actor] & ACTORS) for actor in ACTORS if graph[actor] & ACTORS}
    assert not crossing, f"actor modules importing other actors' modules: {crossing}"


def test_the_console_modules_import_no_circle() -> None:
    try:
        tuple(TopologicalSorter(import_graph()).static_order())
    except CycleError as circle:
        circle_at = circle.args[1]
        raise AssertionError(f"an import circle in the console: {circle_at}") from None


def test_the_http_reference_sees_every_actors_route(tmp_path: Path) -> None:
    """The site's HTTP page lists the console's routes: FastAPI keeps each included
    router whole, as one route holding it, and the reference opens them."""
    from aiguillage.console.app import ROUTERS, create_app
    from aiguillage.reference import _api_routes
    from shared.settings import Settings

    app = create_app(Settings(environment="development", data_dir=str(tmp_path)), listen=False)
    listed = [route.endpoint for route in _api_routes(app.routes)]
    assert listed == [route.endpoint for actor in ROUTERS for route in actor.router.routes]
    assert {module.__name__.rsplit(".", 1)[-1] for module in ROUTERS} == ACTORS
