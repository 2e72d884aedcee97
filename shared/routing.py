"""Which event goes to which handler: the one table each service's ``app.py`` holds.

A service's table is a tuple of :class:`Route`, one per (queue, event type): the queue's
declaration (its name, exchange and binding keys) is in ``shared.topology``; the table
says who handles each type that arrives on it. ``check_routes`` compares the two, and a
service refuses to start when they disagree (a binding with no handler would dead-letter
every such event; a handler with no binding would never run), so the route is read in
one place and cannot drift from what the broker delivers.

The handler of a route is the unbound method of the service's handlers class
(``SchedulerHandlers.on_regulated``), so the table is module data a test and a newcomer
read without building anything; ``dispatcher`` binds it to the instance at wiring time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from shared.consumer import Delivery, Handler, PermanentError
from shared.contracts import routing_key_pattern
from shared.events import EventPayload
from shared.events.registry import CATALOGUE
from shared.settings import ServiceName
from shared.topology import SUBSCRIPTIONS

H = TypeVar("H")


@dataclass(frozen=True, slots=True)
class Route(Generic[H]):
    """Events of type ``event`` arriving on ``subscription`` go to ``handler``."""

    subscription: str
    event: type[EventPayload]
    handler: Callable[[H, Delivery], Awaitable[None]]

    @property
    def event_type(self) -> str:
        return self.event.event_type


def subscriptions(routes: Sequence[Route[H]]) -> tuple[str, ...]:
    """The queues a table consumes, in the table's order."""
    return tuple(dict.fromkeys(r.subscription for r in routes))


def dispatcher(owner: H, routes: Sequence[Route[H]], subscription: str) -> Handler:
    """The one handler of ``subscription``: each delivery to its type's route."""
    table = {r.event_type: r.handler for r in routes if r.subscription == subscription}
    if not table:
        raise ValueError(f"no route for subscription {subscription!r}")

    async def dispatch(delivery: Delivery) -> None:
        handler = table.get(delivery.envelope.type)
        if handler is None:
            # The queue's bindings let it in and the table has no handler: the service
            # refuses to start on that (check_routes), so this is an event type that
            # shares a binding's prefix with a routed one. Never retried.
            raise PermanentError("no_route", f"no handler for {delivery.envelope.type}")
        await handler(owner, delivery)

    dispatch.__qualname__ = f"dispatch[{subscription}]"
    return dispatch


def _types() -> tuple[str, ...]:
    # Longest first: "consultation.corrected" before a shorter type it starts with.
    return tuple(sorted({c.event_type for c in CATALOGUE}, key=len, reverse=True))


def _fixed_keys() -> dict[str, str]:
    # An event on a key of its own, not its type's (patient.contact on contact.notifier,
    # the one key only the notifier's queue binds): the key names its event type.
    patterns = {c.event_type: routing_key_pattern(c) for c in CATALOGUE}
    return {
        key: event_type
        for event_type, key in patterns.items()
        if "{" not in key and key != event_type
    }


def event_type_of(binding: str) -> str | None:
    """The event type a binding key delivers (``slot.assigned.*`` → ``slot.assigned``,
    ``referral.regulated.refuse`` → ``referral.regulated``, ``contact.notifier`` →
    ``patient.contact``), None when none."""
    if binding in (fixed := _fixed_keys()):
        return fixed[binding]
    for event_type in _types():
        if binding == event_type or binding.startswith(event_type + "."):
            return event_type
    return None


def check_routes(service: ServiceName, routes: Sequence[Route[H]]) -> list[str]:
    """What disagrees between ``service``'s table and its queues' bindings: empty when
    every binding has a handler and every handler a binding."""
    problems: list[str] = []
    routed = {(r.subscription, r.event_type) for r in routes}
    bound: set[tuple[str, str]] = set()
    for spec in SUBSCRIPTIONS[service]:
        for binding in spec.bindings:
            event_type = event_type_of(binding)
            if event_type is None:
                problems.append(f"{spec.subscription}: binding {binding!r} is no event type")
                continue
            bound.add((spec.subscription, event_type))
            if (spec.subscription, event_type) not in routed:
                problems.append(f"{spec.subscription}: {binding!r} has no handler")
    for subscription, event_type in sorted(routed - bound):
        problems.append(f"{subscription}: the handler of {event_type} has no binding")
    seen: set[tuple[str, str]] = set()
    for r in routes:
        if (r.subscription, r.event_type) in seen:
            problems.append(f"{r.subscription}: {r.event_type} routed twice")
        seen.add((r.subscription, r.event_type))
    return problems
