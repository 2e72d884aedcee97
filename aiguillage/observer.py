"""Watches every event on the exchange and tracks what became of each referral."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from aio_pika.abc import AbstractConnection, AbstractIncomingMessage

from shared import broker_nodes
from shared.events import Envelope
from shared.topology import events_exchange

FINAL = ("rejected", "refused", "escalated", "home_follow_up", "held", "assigned", "waitlisted")


@dataclass
class Track:
    reference: str
    submitted_at: float
    referral_id: str | None = None
    state: str | None = None
    centre: str | None = None
    notified_at: float | None = None
    # When the observer saw the referral's regulation and its slot on the bus: the
    # scheduler's stage lies between them (bench/pipeline.py).
    regulated_at: float | None = None
    booked_at: float | None = None


@dataclass
class Observer:
    url: str | Sequence[str]  # one broker, or every node of a cluster
    namespace: str
    tracks: dict[str, Track] = field(default_factory=dict)  # by reference
    by_referral: dict[str, Track] = field(default_factory=dict)
    events: list[Envelope] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    # A named, durable queue survives a broker restart (fault tests); the default
    # private queue lives and dies with the observer's connection.
    durable_queue: str | None = None
    # A national wave is millions of events: keep the tracks, not every envelope.
    keep_events: bool = True
    _connection: AbstractConnection | None = None
    _pending: dict[str, list[Envelope]] = field(default_factory=lambda: defaultdict(list))
    _seen: set[str] = field(default_factory=set)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    # What the run booked and sent, for its summary: the least time between a booking
    # (its event's time) and its slot's start, over every booking and move; the most
    # segments an SMS took.
    shortest_lead: timedelta | None = None
    longest_sms: int | None = None

    async def start(self) -> None:
        self._connection = await broker_nodes.connect_robust(self.url)
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=1000)
        exchange = await channel.get_exchange(events_exchange(self.namespace))
        if self.durable_queue:
            queue = await channel.declare_queue(
                self.durable_queue, durable=True, arguments={"x-queue-type": "quorum"}
            )
        else:
            queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key="#")
        if self.durable_queue:
            # Acknowledged once seen: what was in flight when the broker went down is
            # delivered again, where an automatic ack would have lost it with the socket.
            await queue.consume(self._on_acked_message)
        else:
            await queue.consume(self._on_message, no_ack=True)

    async def stop(self) -> None:
        if self._connection is not None:
            if self.durable_queue:
                channel = await self._connection.channel()
                await channel.queue_delete(self.durable_queue)
            await self._connection.close()

    def submitted(self, reference: str) -> None:
        self.tracks[reference] = Track(reference, time.monotonic())

    def done(self) -> bool:
        return all(t.state in FINAL for t in self.tracks.values())

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self.feed(message.body)

    async def _on_acked_message(self, message: AbstractIncomingMessage) -> None:
        if message.message_id is None or message.message_id not in self._seen:
            self.feed(message.body)
            if message.message_id is not None:
                self._seen.add(message.message_id)
        await message.ack()

    def feed(self, body: bytes) -> None:
        try:
            envelope = Envelope.model_validate_json(body)
        except ValueError:
            return
        if self.keep_events:
            self.events.append(envelope)
        self.counts[envelope.type] += 1
        self._measure(envelope)
        self._apply(envelope)
        self.changed.set()

    def _measure(self, env: Envelope) -> None:
        data = env.data
        if env.type in ("slot.assigned", "appointment.rescheduled") and "start" in data:
            lead = datetime.fromisoformat(data["start"]) - env.time
            if self.shortest_lead is None or lead < self.shortest_lead:
                self.shortest_lead = lead
        elif env.type == "notification.sent" and data.get("segments") is not None:
            self.longest_sms = max(self.longest_sms or 0, int(data["segments"]))

    def _apply(self, env: Envelope) -> None:
        data = env.data
        if env.type == "submission.acknowledged":
            track = self.tracks.get(data["reference"])
            if track is not None and track.referral_id is None:
                track.referral_id = data["referral_id"]
                self.by_referral[track.referral_id] = track
                for pending in self._pending.pop(track.referral_id, []):
                    self._apply(pending)
            return
        if env.type == "submission.error":
            track = self.tracks.get(data.get("reference") or "")
            if track is not None:
                track.state = "rejected"
            return
        referral_id = data.get("referral_id") or env.correlation_id
        track = self.by_referral.get(referral_id)
        if track is None:
            # The acknowledgement may come after the first downstream event.
            self._pending[referral_id].append(env)
            return
        if env.type == "referral.regulated":
            track.regulated_at = track.regulated_at or time.monotonic()
            state = {
                "escalate": "escalated",
                "home_follow_up": "home_follow_up",
                "refuse": "refused",
                "hold": "held",
            }.get(data["decision"])
            if state is not None:
                track.state = state
        elif env.type == "referral.waitlisted":
            track.state = "waitlisted"
        elif env.type == "slot.assigned":
            track.booked_at = track.booked_at or time.monotonic()
            track.centre = data["centre_id"]
            track.state = track.state if track.state == "assigned" else "booked"
        elif (
            env.type == "notification.sent"
            and data["recipient_kind"] == "centre"
            and track.notified_at is None
        ):
            track.notified_at = time.monotonic()
            track.state = "assigned"
