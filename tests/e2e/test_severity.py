"""Severity before screening, the four services as separate processes.

A referral marked as a screening request that shows a severity sign is a severe
patient first: escalated, Centre 15 told, and the referrer's answer names the sign.
Only a screening request without any sign is refused as screening.
"""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any

import pytest

from aiguillage.demo import wait_for_consumers
from aiguillage.processes import ServiceProcesses
from shared.events import Envelope, Purpose, ReferralSubmitted, SeveritySign
from shared.publisher import EventPublisher
from shared.settings import Settings
from tests.helpers import Tap, referral

pytestmark = pytest.mark.e2e

REFERRER_KEY = "reply.tests.referral.outcome"
# SAMU 35, which covers the patients of Rennes, on its own key.
CENTRE_15_KEY = "reply.samu-35.referral.outcome"


def _eighty_one_years_ago() -> date:
    # The first of the month, then one day back: no 29 February, and the birthday of
    # this year has passed, so the patient is 81 today.
    today = date.today()
    return today.replace(year=today.year - 81, day=1) - timedelta(days=1)


def _screening(reference: str, **patient: Any) -> ReferralSubmitted:
    return referral(reference, **patient).model_copy(update={"purpose": Purpose.SCREENING})


def _spo2_88() -> ReferralSubmitted:
    base = _screening("sev-spo2")
    vitals = base.clinical.vitals.model_copy(update={"spo2": 88.0})
    return base.model_copy(update={"clinical": base.clinical.model_copy(update={"vitals": vitals})})


def _confused_at_81() -> ReferralSubmitted:
    base = _screening("sev-confusion", birth_date=_eighty_one_years_ago(), nir=None)
    clinical = base.clinical.model_copy(update={"severity_signs": (SeveritySign.CONFUSION,)})
    return base.model_copy(update={"clinical": clinical})


def _nothing_at_all() -> ReferralSubmitted:
    # Nothing any protocol could read as severe: intake itself refuses the screening.
    base = _screening("sev-nothing")
    clinical = base.clinical.model_copy(
        update={
            "symptomatic": False,
            "symptoms": (),
            "onset_date": None,
            "vitals": base.clinical.vitals.model_copy(update={"temperature_c": 36.8}),
        }
    )
    return base.model_copy(update={"clinical": clinical})


def _outcomes(tap: Tap, key: str) -> dict[str, Envelope]:
    """The referral.outcome messages on ``key``, by referral id."""
    found: dict[str, Envelope] = {}
    for message in tap.messages:
        if message.routing_key == key:
            envelope = Envelope.model_validate_json(message.body)
            found[envelope.data["referral_id"]] = envelope
    return found


async def test_a_severity_sign_wins_over_a_screening_request(
    settings: Settings, processes: ServiceProcesses
) -> None:
    s = settings
    await wait_for_consumers(s.broker_url, s.namespace, timeout=60)
    async with Tap(s.broker_url, s.namespace) as tap:
        async with EventPublisher(s.broker_url, s.namespace, "gp") as gp:
            await gp.publish(_spo2_88(), correlation_id="sev-1")
            await gp.publish(_confused_at_81(), correlation_id="sev-2")
            # Symptomatic, no sign: regulation refuses it as screening.
            await gp.publish(_screening("sev-plain"), correlation_id="sev-3")
            nothing = await gp.publish(_nothing_at_all(), correlation_id="sev-4")

        def acknowledged(events: list[Envelope]) -> dict[str, str]:
            return {
                e.data["reference"]: e.data["referral_id"]
                for e in events
                if e.type == "submission.acknowledged"
            }

        def finished(events: list[Envelope]) -> bool:
            acks = acknowledged(events)
            if len(acks) < 3 or not any(e.type == "submission.error" for e in events):
                return False
            to_referrer, to_centre_15 = _outcomes(tap, REFERRER_KEY), _outcomes(tap, CENTRE_15_KEY)
            return set(acks.values()) <= set(to_referrer) and {
                acks["sev-spo2"],
                acks["sev-confusion"],
            } <= set(to_centre_15)

        await tap.wait_for(finished, timeout=60)
        await asyncio.sleep(1.0)  # room for a wrong second notice

    ids = acknowledged(tap.envelopes)
    decisions = {e.data["referral_id"]: e.data for e in tap.of_type("referral.regulated")}
    to_referrer, to_centre_15 = _outcomes(tap, REFERRER_KEY), _outcomes(tap, CENTRE_15_KEY)

    # (a) SpO2 88 %: escalated, the referrer's answer names SpO2, Centre 15 told.
    spo2 = ids["sev-spo2"]
    assert decisions[spo2]["decision"] == "escalate"
    assert "SpO2 à 88 %" in decisions[spo2]["reasons"][0]["message"]
    answer = to_referrer[spo2].data
    assert answer["status"] == "escalated"
    assert "SpO2 88 % (< 90 %)" in answer["message"]
    codes = [r["code"] for r in answer["detail"]["reason_details"]]
    assert "severity.spo2" in codes and "screening" in codes
    notice = to_centre_15[spo2].data
    assert notice["status"] == "escalated" and notice["referral_id"] == spo2
    assert notice["detail"]["patient_ref"] == decisions[spo2]["patient_ref"]
    assert "SpO2" in notice["message"]

    # (b) Confusion at 81: likewise.
    confused = ids["sev-confusion"]
    assert decisions[confused]["decision"] == "escalate"
    assert decisions[confused]["age"] == 81
    answer = to_referrer[confused].data
    assert answer["status"] == "escalated" and "confusion" in answer["message"]
    assert "severity.sign.confusion" in [r["code"] for r in answer["detail"]["reason_details"]]
    assert to_centre_15[confused].data["status"] == "escalated"

    # (c) Screening without a sign: refused as screening, by regulation when the
    # patient has symptoms (intake cannot judge them), by intake when nothing shows;
    # Centre 15 hears of neither.
    plain = ids["sev-plain"]
    assert decisions[plain]["decision"] == "refuse"
    assert decisions[plain]["reasons"][0]["code"] == "screening"
    assert to_referrer[plain].data["status"] == "refused"
    [error] = tap.of_type("submission.error")
    assert error.data["source_message_id"] == nothing.id
    assert error.data["error_code"] == "screening_not_offered"
    assert set(to_centre_15) == {spo2, confused}
    # Once each: no referral is told twice on either key.
    for key in (REFERRER_KEY, CENTRE_15_KEY):
        told = [
            Envelope.model_validate_json(m.body).data["referral_id"]
            for m in tap.messages
            if m.routing_key == key
        ]
        assert len(told) == len(set(told)), key
