"""A notice already pending when its referral is restricted (issue 34), on the real
broker: the patient's notice waits for its contact, ``referral.restricted`` comes, then
the contact; the dispatcher claims the notice and withholds it (nothing sent, nothing of
its words kept), while the same run's other referral is told. The centre's day list
still names the restricted patient (care goes on) and says it is restricted, for the
console to leave it out of the day's export."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from services.notifier.app import build as build_notifier
from services.notifier.domain.restriction import WITHHELD_REASON
from services.notifier.handlers import dispatcher
from services.notifier.store.tables import attempts, notifications, restrictions
from shared.auth import Role, issue_token
from shared.events import Envelope, EventPayload, ReferralRestricted
from shared.paris import in_paris
from shared.publisher import EventPublisher
from shared.runtime import ServiceRuntime
from shared.settings import ServiceName, Settings
from tests.helpers import running
from tests.integration.test_privacy_restrict import _contact, _slot


async def _rows(runtime: ServiceRuntime, table: Any) -> list[Any]:
    async with runtime.database.transaction() as session:
        return list((await session.execute(select(table))).all())


async def _until(predicate: Any, timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met"
        await asyncio.sleep(0.1)


async def _patient_notice(runtime: ServiceRuntime, referral: str) -> Any:
    rows = await _rows(runtime, notifications)
    found = [r for r in rows if r.referral_id == referral and r.recipient_kind == "patient"]
    return found[0] if found else None


async def test_a_pending_notice_of_a_referral_restricted_meanwhile_is_not_sent(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A notice waiting for its contact is looked at again soon (5 s in production).
    monkeypatch.setattr(dispatcher, "WAIT_RECHECK_SECONDS", 0.2)
    async with (
        running(build_notifier(settings)) as notifier,
        EventPublisher(settings.broker_url, settings.namespace, "t") as publisher,
    ):

        async def publish(payload: EventPayload, referral: str) -> None:
            envelope = Envelope.wrap(payload, source="t", correlation_id=referral)
            await publisher.publish_envelope(envelope, payload.routing_key())

        slots = {referral: _slot(referral) for referral in ("kept", "free")}
        for referral, slot in slots.items():
            await publish(slot, referral)

        async def both_pending() -> bool:
            found = [await _patient_notice(notifier, r) for r in slots]
            return all(n is not None and n.status == "pending" and n.body for n in found)

        await _until(both_pending)
        restricted = ReferralRestricted(
            referral_id="kept", patient_ref="p-kept", restricted_at=datetime.now(UTC)
        )
        await publish(restricted, "kept")

        async def recorded() -> bool:
            return len(await _rows(notifier, restrictions)) == 1

        await _until(recorded)
        # The contacts come: the dispatcher may send now.
        for referral in slots:
            await publish(_contact(referral), referral)

        async def both_settled() -> bool:
            found = [await _patient_notice(notifier, r) for r in slots]
            return all(n.status not in ("pending", "sending") for n in found)

        await _until(both_settled)
        kept = await _patient_notice(notifier, "kept")
        free = await _patient_notice(notifier, "free")
        assert free.status == "sent"
        assert (kept.status, kept.sent_at, kept.last_error) == ("withheld", None, WITHHELD_REASON)
        assert (kept.subject, kept.body, kept.target) == ("", "", {})
        assert kept.id not in {a.notification_id for a in await _rows(notifier, attempts)}
        told = {
            r.recipient_kind
            for r in await _rows(notifier, notifications)
            if r.referral_id == "kept" and r.status == "sent"
        }
        assert told <= {"centre"}
        day = in_paris(slots["kept"].start).date().isoformat()
        listed = await _day_list(notifier, settings, day)
    assert listed == {"kept": ("Zéphirine Purgeable", True), "free": ("Zéphirine Purgeable", False)}


async def _day_list(runtime: ServiceRuntime, settings: Settings, day: str) -> dict[str, Any]:
    token = issue_token(settings, Role.CENTRE, "rennes-1", ServiceName.NOTIFIER)
    transport = httpx.ASGITransport(app=runtime.http_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://notifier") as http:
        answer = await http.get(
            "/centres/rennes-1/appointments",
            params={"day": day},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert answer.status_code == 200, answer.text
    return {
        a["referral_id"]: (a["patient_name"], a["restricted"])
        for a in answer.json()["appointments"]
    }
