"""Live updates: one private queue on the events exchange, fanned out to the browsers.

Each browser holds a server-sent-events stream; the hub tells it which parts of its
page an event touches (``territory``, ``appointments``, ``escalations``, ``held``), and
only what the actor may see: a centre hears of its own patients only; a SAMU of its
départements' patients, an ARS of its region (issue 28). An event of another territory
is not sent at all; one whose territory the event does not say (a centre the console has
not seen activated, an answer on Centre 15's key) only says that something changed, never
what: the page reads its part again from the services, which show it its own only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace

import aio_pika
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage

from aiguillage.console.auth import Actor
from aiguillage.console.people import region_departements
from shared.auth import Role
from shared.events import Envelope
from shared.geo import commune
from shared.labels import REINFORCEMENT_RAISED_AGAIN
from shared.territory import Territories
from shared.topology import events_exchange

# The keys the console listens to. Centre 15's replies carry the escalations and the
# outcomes of the referrals it sent.
BINDINGS = (
    "centre.#",
    "capacity.alert.#",
    "reinforcement.requested.*",
    "reinforcement.raised_again.*",
    "slot.assigned.#",
    "appointment.#",
    "referral.waitlisted",
    "referral.regulated.*",
    "consultation.#",
    "patient.escalated.*",
    "reply.centre-15.#",
)


@dataclass(frozen=True)
class Change:
    """What changed, for whom: the page parts to refresh and a line for the journal."""

    event_type: str
    parts: tuple[str, ...]
    centre_id: str | None
    line: str
    # Whose territory it is of, when the event says: the patient's (or the alert's)
    # département, and the centre's.
    departement: str | None = None
    centre_departement: str | None = None

    def territory(self, actor: Actor) -> str | None:
        """The département that decides who may hear of it: a SAMU's patients are
        those of its départements (wherever they are booked), an ARS's the centres and
        patients of its region."""
        if actor.role is Role.CENTRE_15:
            return self.departement
        return self.departement or self.centre_departement

    def concerns(self, actor: Actor) -> bool:
        if actor.role is Role.ARS:
            return "territory" in self.parts
        if actor.role is Role.CENTRE:
            return "appointments" in self.parts and self.centre_id == actor.subject
        if actor.role is Role.REFERRER:
            return "referrals" in self.parts
        return bool({"escalations", "held", "referrals"} & set(self.parts))

    def sse(self, private: bool = False) -> str:
        # A referrer hears that something changed, never what, of whose patient: the
        # page reads its own referrals again from intake, with the referrer's token.
        line = "" if private else self.line
        data = json.dumps({"type": self.event_type, "parts": self.parts, "line": line})
        return f"event: change\ndata: {data}\n\n"


# What may change a referral's status as intake tells it: the referrers' pages (and
# Centre 15's referral page) read their referrals again.
REFERRAL_EVENTS = frozenset(
    {
        "referral.regulated",
        "referral.waitlisted",
        "slot.assigned",
        "appointment.rescheduled",
        "appointment.cancelled",
        "consultation.completed",
        "consultation.no_show",
        "consultation.corrected",
        "patient.escalated",
    }
)


def referral_change(envelope: Envelope) -> Change | None:
    """The referrers' part an event touches (a pure function, unit-tested)."""
    if envelope.type not in REFERRAL_EVENTS:
        return None
    return Change(envelope.type, ("referrals",), None, "")


def departements_of(
    envelope: Envelope, centres: Mapping[str, str]
) -> tuple[str | None, str | None]:
    """(the patient's or the alert's département, the centre's), as far as the event
    says: ``departement`` in its data, the centre's commune (its activation), or the
    centre's département as its activation told the hub (``centres``)."""
    data = envelope.data
    own = data.get("departement")
    centre_id = data.get("centre_id")
    town = (
        commune(str(data.get("commune_insee", ""))) if envelope.type.startswith("centre.") else None
    )
    at_centre = town.departement if town else centres.get(str(centre_id)) if centre_id else None
    return (str(own) if own else None), at_centre


def classify(envelope: Envelope) -> Change | None:
    """The page parts an event changes (a pure function, unit-tested)."""
    data = envelope.data
    kind = envelope.type
    centre_id = data.get("centre_id")
    if kind.startswith("centre."):
        what = {
            "centre.activated": "activé",
            "centre.capacity_changed": "capacité modifiée",
            "centre.suspended": "suspendu",
            "centre.closed": "fermé",
        }.get(kind, kind)
        return Change(kind, ("territory",), centre_id, f"Centre {centre_id} {what}")
    if kind == "capacity.alert":
        label = "saturation" if data.get("kind") == "saturation" else "liste d'attente"
        if data.get("cleared"):
            return Change(
                kind,
                ("territory",),
                None,
                f"Fin de l'alerte {label} dans le {data.get('departement')}",
            )
        return Change(
            kind,
            ("territory",),
            None,
            f"Alerte {label} dans le {data.get('departement')} "
            f"(occupation {float(data.get('occupancy_next_24h', 0)):.0%}, "
            f"{data.get('waiting', 0)} en attente)",
        )
    if kind == "reinforcement.requested":
        return Change(
            kind,
            ("territory",),
            centre_id,
            f"{centre_id} demande {data.get('count')} {data.get('profession')}",
        )
    if kind == "reinforcement.raised_again":
        # Its département says whose it is (the ARS of the centre's region).
        return Change(
            kind,
            ("territory",),
            centre_id,
            f"Demande de renfort de {centre_id} ({data.get('count')} {data.get('profession')}) "
            f"{REINFORCEMENT_RAISED_AGAIN}",
        )
    if kind in ("slot.assigned", "appointment.rescheduled", "appointment.cancelled"):
        return Change(kind, ("territory", "appointments"), centre_id, f"{kind} {centre_id}")
    if kind in ("consultation.completed", "consultation.no_show", "consultation.corrected"):
        return Change(kind, ("territory", "appointments"), centre_id, f"{kind} {centre_id}")
    if kind == "referral.waitlisted":
        return Change(kind, ("territory",), None, "Patient en liste d'attente")
    if kind == "referral.regulated":
        if data.get("decision") == "escalate":
            return Change(
                kind,
                ("escalations", "held"),
                None,
                f"Adressé au SAMU ({data.get('commune_insee', '')}, {data.get('age', '?')} ans)",
            )
        if data.get("decision") == "hold":
            return Change(kind, ("held",), None, "Dossier en attente de régulateur")
        if data.get("decided_by", "protocol") != "protocol":
            return Change(kind, ("held",), None, "Décision d'un régulateur")
        return None
    if kind == "patient.escalated":
        return Change(
            kind,
            ("escalations", "appointments", "territory"),
            centre_id,
            f"Escalade depuis {centre_id} : {data.get('reason', '')}",
        )
    if kind == "referral.outcome":
        if data.get("status") == "escalated_by_centre":
            return None  # the centre's own patient.escalated says it first
        return Change(kind, ("escalations",), None, f"Suivi : {data.get('status', '')}")
    return None


@dataclass
class EventHub:
    url: str
    namespace: str
    # Seconds between keep-alives on an idle stream; each one checks the session again
    # (the console's while_valid), so a session gone idle ends its stream this soon.
    heartbeat: float = 15.0
    territories: Territories = field(default_factory=Territories)
    _subscribers: set[asyncio.Queue[Change]] = field(default_factory=set)
    _connection: AbstractConnection | None = None
    # Each centre's département, as its activation said (centre.activated).
    _centres: dict[str, str] = field(default_factory=dict)

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(self.url)
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=500)
        exchange = await channel.get_exchange(events_exchange(self.namespace))
        # Private, exclusive: it lives and dies with the console, and never holds up the
        # services' own queues.
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        for key in BINDINGS:
            await queue.bind(exchange, routing_key=key)
        await queue.consume(self._on_message, no_ack=True)

    async def stop(self) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            envelope = Envelope.model_validate_json(message.body)
        except ValueError:
            return
        self.feed(envelope)

    def feed(self, envelope: Envelope) -> None:
        own, at_centre = departements_of(envelope, self._centres)
        if envelope.type == "centre.activated" and at_centre is not None:
            self._centres[str(envelope.data.get("centre_id"))] = at_centre
        for found in (classify(envelope), referral_change(envelope)):
            if found is None:
                continue
            change = replace(found, departement=own, centre_departement=at_centre)
            for queue in list(self._subscribers):
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(change)

    async def stream(self, actor: Actor, heartbeat: float | None = None) -> AsyncIterator[str]:
        heartbeat = self.heartbeat if heartbeat is None else heartbeat
        queue: asyncio.Queue[Change] = asyncio.Queue(maxsize=1000)
        self._subscribers.add(queue)
        try:
            yield "retry: 2000\n\n"
            while True:
                try:
                    change = await asyncio.wait_for(queue.get(), heartbeat)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                told = self.told(change, actor)
                if told is not None:
                    yield told
        finally:
            self._subscribers.discard(queue)

    def territory_of(self, actor: Actor) -> frozenset[str] | None:
        """The départements an actor's stream is held to; None: not held to any (a
        centre, a referrer: their own, by id; the national Centre 15)."""
        if actor.role is Role.ARS:
            return region_departements(actor.acts_for)
        if actor.role is Role.CENTRE_15:
            scope = self.territories.scope(actor.acts_for)
            if scope is None:
                return frozenset()  # no known SAMU: nothing of anyone's patients
            return None if scope.national else scope.departements
        return None

    def told(self, change: Change, actor: Actor) -> str | None:
        """What of ``change`` the actor hears: nothing, that something changed, or what."""
        if not change.concerns(actor):
            return None
        if change.parts == ("referrals",):
            # "Read your referrals again", said to every referring page as to referrers:
            # nothing of whom; a SAMU's own referral may be of a patient outside its
            # départements.
            return change.sse(private=True)
        mine = self.territory_of(actor)
        where = change.territory(actor)
        if mine is not None and where is not None and where not in mine:
            return None  # another territory's: not even that it happened
        # A referrer hears that something changed, never what; so does an actor held
        # to a territory of an event that does not say whose it is.
        return change.sse(
            private=actor.role is Role.REFERRER or (mine is not None and where is None)
        )
