"""A referral withdrawn by its referrer frees its slot, and its centre and its patient
are told: `referral.cancelled` goes through intake's door, then the scheduler."""

from __future__ import annotations

from typing import Any

import aio_pika
import httpx
import pytest

from aiguillage.demo import wait_for_consumers, wait_for_drain
from aiguillage.processes import ServiceProcesses
from shared.auth import Role, issue_token
from shared.events import CancelledBy, Envelope, ReferralCancelled
from shared.publisher import EventPublisher
from shared.settings import ServiceName, Settings
from shared.topology import centre_queue
from tests.helpers import Tap, centre, referral

pytestmark = pytest.mark.e2e


async def _booked(processes: ServiceProcesses, s: Settings) -> int:
    token = issue_token(s, Role.ARS, "53", ServiceName.SCHEDULER)
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(
            f"http://127.0.0.1:{processes.ports['scheduler']}/territory/35",
            headers={"Authorization": f"Bearer {token}"},
        )
    body: dict[str, Any] = response.json()
    return sum(c["today"]["booked"] + c["tomorrow"]["booked"] for c in body["centres"])


async def test_a_cancellation_frees_the_slot_and_tells_the_centre_and_the_patient(
    settings: Settings, processes: ServiceProcesses
) -> None:
    s = settings
    await wait_for_consumers(s.broker_url, s.namespace, timeout=60)
    async with Tap(s.broker_url, s.namespace) as tap:
        async with EventPublisher(s.broker_url, s.namespace, "ars") as ars:
            await ars.publish(centre("rennes-cancel", "35238"), correlation_id="rennes-cancel")
        await wait_for_drain(s.broker_url, f"{s.namespace}.notifier.centres")
        async with EventPublisher(s.broker_url, s.namespace, "gp") as gp:
            await gp.publish(referral("to-cancel"), correlation_id="to-cancel")
            [slot] = await _one(tap, "slot.assigned")
            referral_id = slot.data["referral_id"]
            assert await _booked(processes, s) == 1
            await gp.publish(
                ReferralCancelled(
                    referral_id=referral_id,
                    cancelled_by=CancelledBy.PATIENT,
                    reason="le patient va mieux",
                ),
                correlation_id=referral_id,
            )

        def told(es: list[Envelope]) -> bool:
            cancelled = [e for e in es if e.type == "appointment.cancelled"]
            notices = {
                e.data["recipient_kind"]
                for e in es
                if e.type == "notification.sent" and cancelled and e.causation_id == cancelled[0].id
            }
            return bool(cancelled) and {"centre", "patient"} <= notices

        await tap.wait_for(told, timeout=40)
    [cancelled] = tap.of_type("appointment.cancelled")
    assert cancelled.data["appointment_id"] == slot.data["appointment_id"]
    assert cancelled.data["cancelled_by"] == "patient"
    assert await _booked(processes, s) == 0, "the slot is given back"
    # The centre's own queue: its patient, then the cancellation.
    connection = await aio_pika.connect(s.broker_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(
            centre_queue(s.namespace, "rennes-cancel").name(s.namespace), passive=True
        )
        keys = []
        while (message := await queue.get(fail=False)) is not None:
            await message.ack()
            keys.append(message.routing_key)
    assert keys == ["slot.assigned.rennes-cancel", "appointment.cancelled.rennes-cancel"]


async def _one(tap: Tap, event_type: str) -> list[Envelope]:
    await tap.wait_for(lambda es: any(e.type == event_type for e in es), timeout=40)
    return tap.of_type(event_type)
