"""One floor plan: every service has the same rooms, and its ``app.py`` table says
which handler takes each event type its queues receive (issue 29).

The table (``ROUTES``) is compared with the queues' bindings in ``shared.topology``:
a binding with no handler, a handler with no binding, or an event routed twice fails,
naming the service and the queue. The rooms are read from the tree, the tables by
importing each ``app`` module (no broker, no database).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from shared.routing import Route, check_routes, event_type_of
from shared.settings import ServiceName
from shared.topology import SUBSCRIPTIONS

SERVICES = Path(__file__).resolve().parents[2] / "services"
NAMES = ("intake", "regulation", "scheduler", "notifier")
ROOMS = ("app.py", "domain", "handlers", "store", "http", "migrations", "README.md")


@pytest.mark.parametrize("name", NAMES)
def test_every_service_has_the_same_rooms(name: str) -> None:
    folder = SERVICES / name
    missing = [room for room in ROOMS if not (folder / room).exists()]
    assert not missing, f"services/{name} lacks {missing}"
    for package in ("domain", "handlers", "store", "http"):
        assert (folder / package / "__init__.py").is_file(), f"{name}/{package} is no package"
    assert (folder / "store" / "tables.py").is_file(), f"{name}'s schema is not store/tables.py"
    # Nothing else at the top but the package marker: a module beside the rooms is a
    # room nobody knows to look in.
    extra = sorted(
        p.name
        for p in folder.iterdir()
        if p.name not in ROOMS and p.name not in ("__init__.py", "__pycache__", "protocols")
    )
    assert not extra, f"services/{name} has modules outside its rooms: {extra}"
    readme = (folder / "README.md").read_text()
    assert len(readme.splitlines()) <= 80, f"{name}'s README is more than a page"


@pytest.mark.parametrize("name", NAMES)
def test_each_binding_has_a_handler_and_each_handler_a_binding(name: str) -> None:
    routes = importlib.import_module(f"services.{name}.app").ROUTES
    assert routes and all(isinstance(r, Route) for r in routes)
    assert check_routes(ServiceName(name), routes) == []


def test_the_route_check_sees_what_disagrees() -> None:
    """Not blind: a table missing a route, or with one the queues never deliver, fails."""
    routes = importlib.import_module("services.scheduler.app").ROUTES
    problems = check_routes(ServiceName.SCHEDULER, routes[1:])
    assert problems and "has no handler" in problems[0]
    stray = Route("referrals", routes[0].event, routes[0].handler)
    if any(r.subscription == "referrals" and r.event is stray.event for r in routes):
        pytest.skip("the first route already on referrals")
    assert any("has no binding" in p for p in check_routes(ServiceName.SCHEDULER, (*routes, stray)))


def test_every_binding_names_an_event_type() -> None:
    for specs in SUBSCRIPTIONS.values():
        for spec in specs:
            for binding in spec.bindings:
                assert event_type_of(binding), f"{spec.subscription}: {binding}"
