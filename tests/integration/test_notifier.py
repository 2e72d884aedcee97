"""The notifier's sends: once per event whatever the redeliveries, retried with
backoff on temporary failure, recorded; and the centres' authenticated day list."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default
from typing import Any

import aio_pika
import httpx
import pytest
from aiosmtpd.controller import Controller
from fastapi import FastAPI, Request
from sqlalchemy import select

from services.notifier.app import build
from services.notifier.domain.sms import measure
from services.notifier.handlers.channels import signature
from services.notifier.handlers.sealing import ContactVault
from services.notifier.store.tables import (
    attempts,
    contacts,
    deferred_outcomes,
    notifications,
    referrers,
)
from services.regulation.domain.protocol import default_protocol
from services.regulation.domain.rules import Case, decide
from shared.auth import Role, issue_token
from shared.db import as_utc
from shared.events import (
    AppointmentCancelled,
    CancelledBy,
    Clinical,
    ConsultationCancelled,
    ConsultationCorrected,
    ConsultationNoShow,
    Envelope,
    PatientContact,
    PatientEscalated,
    Priority,
    Purpose,
    ReferralCancelled,
    ReferralReceived,
    ReferralRegulated,
    ReferralWaitlisted,
    ReferrerKind,
    ReferrerRef,
    SeveritySign,
    SlotAssigned,
    Vitals,
    WithdrawalReason,
    new_id,
)
from shared.http import HttpServer
from shared.paris import in_paris
from shared.publisher import EventPublisher
from shared.runtime import ServiceRuntime
from shared.settings import ServiceName, Settings
from shared.topology import actor_queue, declare_queue, reply_key
from tests.helpers import Tap, dead_letters, running


class Mailbox:
    """A real SMTP server (aiosmtpd) that refuses the first ``failures`` mails (451)."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.refused = 0
        self.delivered: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refused < self.failures:
            self.refused += 1
            return "451 4.3.0 try again later"
        self.delivered.append(envelope)
        return "250 OK"


class AnyPortController(Controller):
    """aiosmtpd on a port the system picks (0): a port chosen free beforehand could be
    taken by another process before the server binds it."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = int(self.server.sockets[0].getsockname()[1])
        super()._trigger_server()  # type: ignore[no-untyped-call]


@pytest.fixture
def mailbox(request: pytest.FixtureRequest) -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox(getattr(request, "param", 0))
    controller = AnyPortController(box, hostname="127.0.0.1", port=0)
    controller.start()
    port = controller.port
    try:
        yield box, port
    finally:
        controller.stop()


class Gateway:
    """A fake SMS gateway and webhook receiver, over real HTTP."""

    def __init__(self) -> None:
        self.sms: list[dict[str, Any]] = []
        self.hooks: list[tuple[bytes, dict[str, str]]] = []
        self.app = FastAPI()

        @self.app.post("/sms")
        async def sms(request: Request) -> dict[str, str]:
            self.sms.append(await request.json())
            return {"status": "queued"}

        @self.app.post("/hook")
        async def hook(request: Request) -> dict[str, str]:
            self.hooks.append((await request.body(), dict(request.headers)))
            return {"status": "ok"}


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[Gateway, int]]:
    fake = Gateway()
    server = HttpServer(fake.app, "127.0.0.1", 0)
    await server.start()
    try:
        yield fake, server.port
    finally:
        await server.stop()


@pytest.fixture
async def notifier(
    settings: Settings, mailbox: tuple[Mailbox, int], gateway: tuple[Gateway, int]
) -> AsyncIterator[ServiceRuntime]:
    configured = settings.model_copy(
        update={
            "patient_channels": ["email", "sms"],
            "smtp_port": mailbox[1],
            "sms_gateway_url": f"http://127.0.0.1:{gateway[1]}/sms",
            "notify_backoff_seconds": 0.2,
            "notify_max_attempts": 4,
        }
    )
    runtime = build(configured)
    async with running(runtime):
        yield runtime


REFERRAL = "ref-notif-1"


def _contact(referral_id: str, patient_ref: str, referrer: ReferrerRef) -> PatientContact:
    """What intake sends the notifier for an accepted referral: the patient's contact,
    and who referred it (the notifier does not consume referral.received)."""
    return PatientContact(
        referral_id=referral_id,
        patient_ref=patient_ref,
        first_name="Éloïse",
        last_name="Dupont",
        phone="0612345678",
        email="eloise@exemple.fr",
        sms_consent=True,
        referrer=referrer,
    )


def _events(webhook: str | None = None) -> list[tuple[Envelope, str]]:
    # A referral.received first, as intake sends it: no binding of the notifier's
    # takes it, and the referrer is still learnt from the contact.
    received = ReferralReceived(
        referral_id=REFERRAL,
        patient_ref="pat-1",
        age=50,
        sex="female",
        commune_insee="35238",
        departement="35",
        clinical={"symptomatic": True},
        referrer=ReferrerRef(
            kind=ReferrerKind.GP, identifier="gp-1", reply_to="gp-1", webhook_url=webhook
        ),
        purpose="consultation",
        submitted_at=datetime.now(UTC),
    )
    contact = _contact(REFERRAL, "pat-1", received.referrer)
    start = datetime.now(UTC) + timedelta(hours=2)
    slot = SlotAssigned(
        centre_id="rennes-1",
        appointment_id="appt-1",
        referral_id=REFERRAL,
        patient_ref="pat-1",
        centre_name="École de la Poterie",
        centre_commune_insee="35238",
        centre_address="12 rue de la Poterie",
        start=start,
        end=start + timedelta(minutes=20),
        box=1,
        priority=Priority.ROUTINE,
        distance_km=2.5,
        test_eligible=True,
    )
    return [
        (Envelope.wrap(p, source="t", correlation_id=REFERRAL), p.routing_key())
        for p in (received, contact, slot)
    ]


async def _rows(runtime: ServiceRuntime, table: Any) -> list[Any]:
    async with runtime.database.transaction() as session:
        return list((await session.execute(select(table))).all())


async def _until(predicate: Any, timeout: float = 20) -> None:
    for _ in range(int(timeout / 0.1)):
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise TimeoutError("condition not met")


async def test_same_event_three_times_gives_one_sms_and_one_email(
    settings: Settings,
    notifier: ServiceRuntime,
    mailbox: tuple[Mailbox, int],
    gateway: tuple[Gateway, int],
) -> None:
    s = settings
    events = _events()
    async with Tap(s.broker_url, s.namespace, "notification.#", "reply.#") as tap:
        async with EventPublisher(s.broker_url, s.namespace, "t") as pub:
            for envelope, key in events[:2]:
                await pub.publish_envelope(envelope, key)
            await asyncio.sleep(0.5)
            for _ in range(3):
                await pub.publish_envelope(*events[2])

        async def sent() -> bool:
            rows = await _rows(notifier, notifications)
            return sum(r.status == "sent" for r in rows) == 4  # centre, referrer, e-mail, SMS

        await _until(sent)
        await asyncio.sleep(1.0)  # room for a wrong second send
    assert len(mailbox[0].delivered) == 1
    assert len(gateway[0].sms) == 1
    mail = mailbox[0].delivered[0]
    assert mail.rcpt_tos == ["eloise@exemple.fr"]
    text = mail.content.decode()
    assert "12 rue de la Poterie" in text and "Rennes" in text
    # Who referred, where to go, and when on which clock, in French: the e-mail whole.
    part = message_from_bytes(mail.content, policy=default).get_body()
    assert part is not None
    body = part.get_content()
    assert body.startswith("Bonjour, à la suite de l'avis de votre médecin, ")
    assert "(heure de Paris) au centre « École de la Poterie », 12 rue" in body
    # The SMS: its essentials in two segments of the GSM alphabet, to the E.164 number.
    sms = gateway[0].sms[0]
    assert sms["to"] == "+33612345678"
    assert sms["text"].startswith("RDV Covid-19 ")
    assert "(heure de Paris), École de la Poterie, 12 rue de la Poterie, Rennes." in sms["text"]
    assert measure(sms["text"]).encoding == "GSM-7" and measure(sms["text"]).segments <= 2
    [centre_notice] = [
        r for r in await _rows(notifier, notifications) if r.recipient_kind == "centre"
    ]
    assert centre_notice.body.endswith("Test à prescrire : oui.")
    kinds = sorted(e.data["recipient_kind"] for e in tap.of_type("notification.sent"))
    assert kinds == ["centre", "patient", "patient", "referrer"]
    [outcome] = tap.of_type("referral.outcome")
    assert outcome.data["status"] == "appointment"
    assert outcome.data["detail"]["test_eligible"] is True
    assert outcome.data["message"].endswith("Test à prescrire : oui.")
    assert any(m.routing_key == "reply.gp-1.referral.outcome" for m in tap.messages)


@pytest.mark.parametrize("mailbox", [2], indirect=True)
async def test_smtp_fails_twice_then_accepts(
    settings: Settings, notifier: ServiceRuntime, mailbox: tuple[Mailbox, int]
) -> None:
    s = settings
    async with Tap(s.broker_url, s.namespace, "notification.#") as tap:
        async with EventPublisher(s.broker_url, s.namespace, "t") as pub:
            for envelope, key in _events():
                await pub.publish_envelope(envelope, key)
                await asyncio.sleep(0.3)

        async def mailed() -> bool:
            rows = await _rows(notifier, notifications)
            return any(r.channel == "email" and r.status == "sent" for r in rows)

        await _until(mailed)
        await tap.wait_for(
            lambda es: any(
                e.type == "notification.sent" and e.data["channel"] == "email" for e in es
            )
        )
    assert len(mailbox[0].delivered) == 1 and mailbox[0].refused == 2
    [email] = [r for r in await _rows(notifier, notifications) if r.channel == "email"]
    assert email.attempts == 3
    tries = sorted(
        (r.attempt, r.error)
        for r in await _rows(notifier, attempts)
        if r.notification_id == email.id
    )
    assert [t[0] for t in tries] == [1, 2, 3]
    assert "451" in (tries[0][1] or "") and "451" in (tries[1][1] or "") and tries[2][1] is None
    failed = [e for e in tap.of_type("notification.failed") if e.data["channel"] == "email"]
    assert [e.data["final"] for e in failed] == [False, False]


@pytest.mark.parametrize("mailbox", [100], indirect=True)
async def test_last_failure_is_dead_lettered(
    settings: Settings, notifier: ServiceRuntime, mailbox: tuple[Mailbox, int]
) -> None:
    s = settings
    async with EventPublisher(s.broker_url, s.namespace, "t") as pub:
        for envelope, key in _events():
            await pub.publish_envelope(envelope, key)
            await asyncio.sleep(0.3)
    [letter] = await dead_letters(s.broker_url, s.namespace, "notifier", expected=1, timeout=30)
    assert letter.headers["x-error-code"] == "notification_failed"
    assert "451" in letter.headers["x-error"]
    [email] = [r for r in await _rows(notifier, notifications) if r.channel == "email"]
    assert email.status == "failed" and email.attempts == 4


async def test_webhook_is_signed(
    settings: Settings, notifier: ServiceRuntime, gateway: tuple[Gateway, int]
) -> None:
    s = settings
    async with EventPublisher(s.broker_url, s.namespace, "t") as pub:
        for envelope, key in _events(webhook=f"http://127.0.0.1:{gateway[1]}/hook"):
            await pub.publish_envelope(envelope, key)
            await asyncio.sleep(0.3)

    async def hooked() -> bool:
        return bool(gateway[0].hooks)

    await _until(hooked)
    body, headers = gateway[0].hooks[0]
    assert headers["x-aiguillage-signature"] == signature(s.webhook_secret, body)
    assert b'"status": "appointment"' in body


async def test_centre_day_list_is_its_own_only(
    settings: Settings, notifier: ServiceRuntime
) -> None:
    s = settings
    async with EventPublisher(s.broker_url, s.namespace, "t") as pub:
        for envelope, key in _events():
            await pub.publish_envelope(envelope, key)

    async def booked() -> bool:
        from services.notifier.store.tables import centre_appointments

        return bool(await _rows(notifier, centre_appointments))

    await _until(booked)
    transport = httpx.ASGITransport(app=notifier.http_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://notifier") as http:
        url = "/centres/rennes-1/appointments"
        assert (await http.get(url)).status_code == 401
        bad = {"Authorization": "Bearer centre:rennes-1:forged"}
        assert (await http.get(url, headers=bad)).status_code == 401

        def bearer(role: Role, subject: str) -> dict[str, str]:
            token = issue_token(s, role, subject, ServiceName.NOTIFIER)
            return {"Authorization": f"Bearer {token}"}

        other = bearer(Role.CENTRE, "paris-1")
        assert (await http.get(url, headers=other)).status_code == 403
        ars = bearer(Role.ARS, "idf")
        assert (await http.get(url, headers=ars)).status_code == 403
        own = bearer(Role.CENTRE, "rennes-1")
        # The list is of a day in France: the appointment's (two hours ahead is
        # tomorrow there from 22:00 on).
        from services.notifier.store.tables import centre_appointments

        [booked_row] = await _rows(notifier, centre_appointments)
        day = in_paris(as_utc(booked_row.start)).date().isoformat()
        response = await http.get(url, headers=own, params={"day": day})
        assert response.status_code == 200
        [appointment] = response.json()["appointments"]
        assert appointment["appointment_id"] == "appt-1"
        assert appointment["patient_name"] == "Éloïse Dupont"
        assert appointment["test_eligible"] is True  # the point of the consultation
        # Who referred the patient, as a kind (issue 30); the centre as the ARS described
        # it, not heard of here (no centre.activated among these events).
        assert appointment["referrer_kind"] == "gp"
        assert response.json()["centre"] is None
        # In two hours: neither "absent" nor "vu" yet (shared/outcomes.py), said at once.
        early = await http.post(f"{url}/appt-1/outcome", json={"outcome": "no_show"}, headers=own)
        assert early.status_code == 409 and early.json()["error_code"] == "no_show_before_end"
        assert "le patient peut encore venir" in early.json()["reasons"][0]["message"]
        early = await http.post(f"{url}/appt-1/outcome", json={"outcome": "seen"}, headers=own)
        assert early.status_code == 409 and early.json()["error_code"] == "outcome_before_start"
        report = await http.post(
            f"{url}/appt-1/outcome", json={"outcome": "escalated", "reason": "SpO2 88"}, headers=own
        )
        assert report.status_code == 202 and report.json()["event_type"] == "patient.escalated"
        foreign = await http.post(
            "/centres/paris-1/appointments/appt-1/outcome", json={"outcome": "seen"}, headers=other
        )
        assert foreign.status_code == 404


async def on_the_bus(
    pub: EventPublisher, payload: ConsultationNoShow | ConsultationCorrected
) -> None:
    """A centre's report as the scheduler's door puts it on the bus once applied (its
    key alone would send it to the ingress, where centres publish)."""
    envelope = Envelope.wrap(payload, source="scheduler", correlation_id=REFERRAL)
    await pub.publish_envelope(envelope, payload.routing_key(), exchange="events")


async def test_a_centre_corrects_an_outcome_and_the_referrer_hears_it(
    settings: Settings, notifier: ServiceRuntime
) -> None:
    """The centre's HTTP door: an outcome recorded (by the scheduler, on the bus) shows in
    the day list with until when it may be corrected; the correction goes to the
    scheduler's door in the centre's name; applied there (on the bus, with the outcome it
    replaces), the referrer is told the outcome that now stands, as a correction."""
    s = settings
    received, contact, booked = _events()
    slot = booked[0].payload_as(SlotAssigned)
    start = datetime.now(UTC) - timedelta(hours=1)  # the consultation is over
    slot = slot.model_copy(update={"start": start, "end": start + timedelta(minutes=20)})
    absent = ConsultationNoShow(appointment_id="appt-1", referral_id=REFERRAL, centre_id="rennes-1")
    async with EventPublisher(s.broker_url, s.namespace, "scheduler") as pub:
        await pub.publish_envelope(*received)
        await pub.publish_envelope(*contact)
        await pub.publish(slot, correlation_id=REFERRAL)
        await asyncio.sleep(0.5)
        await on_the_bus(pub, absent)

    async def recorded() -> bool:
        from services.notifier.store.tables import centre_appointments

        rows = await _rows(notifier, centre_appointments)
        return bool(rows) and rows[0].status == "noshow"

    await _until(recorded)
    token = issue_token(s, Role.CENTRE, "rennes-1", ServiceName.NOTIFIER)
    own = {"Authorization": f"Bearer {token}"}
    url = "/centres/rennes-1/appointments"
    transport = httpx.ASGITransport(app=notifier.http_app)
    async with (
        Tap(s.broker_url, s.namespace, "consultation.#", exchange="ingress") as door,
        httpx.AsyncClient(transport=transport, base_url="http://notifier") as http,
    ):
        day = in_paris(start).date().isoformat()
        [listed] = (await http.get(url, headers=own, params={"day": day})).json()["appointments"]
        assert listed["status"] == "noshow" and listed["outcome_at"] is not None
        until = datetime.fromisoformat(listed["correctable_until"])
        assert until - datetime.fromisoformat(listed["outcome_at"]) == timedelta(hours=24)
        again = await http.post(f"{url}/appt-1/outcome", json={"outcome": "seen"}, headers=own)
        assert again.json()["error_code"] == "outcome_already_recorded"
        same = await http.post(f"{url}/appt-1/correction", json={"outcome": "no_show"}, headers=own)
        assert same.status_code == 409 and same.json()["error_code"] == "correction_unchanged"
        fixed = await http.post(
            f"{url}/appt-1/correction",
            json={"outcome": "seen", "reason": "arrivé en retard"},
            headers=own,
        )
        assert fixed.status_code == 202, fixed.text
        assert fixed.json()["event_type"] == "consultation.corrected"
        await door.wait_for(lambda es: any(e.type == "consultation.corrected" for e in es))
    [sent] = door.of_type("consultation.corrected")
    assert (sent.data["outcome"], sent.data["reason"]) == ("seen", "arrivé en retard")
    [message] = [m for m in door.messages if m.message_id == sent.id]
    assert message.headers["x-aiguillage-actor"] == "centre-rennes-1"

    # The scheduler's door applied it: on the bus, with what it replaces.
    applied = ConsultationCorrected.model_validate({**sent.data, "previous_outcome": "no_show"})
    async with Tap(s.broker_url, s.namespace, "reply.#") as replies:
        async with EventPublisher(s.broker_url, s.namespace, "scheduler") as pub:
            await on_the_bus(pub, applied)
        told = await replies.wait_for(
            lambda es: any(e.data.get("detail", {}).get("corrected") for e in es)
        )
    [outcome] = [e for e in told if e.data.get("detail", {}).get("corrected")]
    assert outcome.data["status"] == "seen"
    assert outcome.data["detail"]["previous_outcome"] == "no_show"
    assert outcome.data["message"] == (
        "Issue corrigée par le centre (le patient avait été noté « absent ») : le patient "
        "a été vu en consultation. Motif : arrivé en retard."
    )

    async def shown() -> bool:
        from services.notifier.store.tables import centre_appointments

        [row] = await _rows(notifier, centre_appointments)
        return bool(row.status == "fulfilled")

    await _until(shown)


async def test_a_centre_cancels_a_consultation_from_its_start_and_never_corrects_it(
    settings: Settings, notifier: ServiceRuntime
) -> None:
    """ "Annulé" at the centre's HTTP door: refused before the slot's start (by the
    door's clock), said at once; from it, sent to the scheduler's door in the centre's
    name with its reason; applied there (on the bus), the day list says "cancelled",
    and no correction turns it into "vu" or "absent"."""
    s = settings
    received, contact, booked = _events()
    slot = booked[0].payload_as(SlotAssigned)
    start = datetime.now(UTC) + timedelta(minutes=30)
    slot = slot.model_copy(update={"start": start, "end": start + timedelta(minutes=20)})
    async with EventPublisher(s.broker_url, s.namespace, "scheduler") as pub:
        await pub.publish_envelope(*received)
        await pub.publish_envelope(*contact)
        await pub.publish(slot, correlation_id=REFERRAL)

    async def listed() -> bool:
        from services.notifier.store.tables import centre_appointments

        return bool(await _rows(notifier, centre_appointments))

    await _until(listed)
    token = issue_token(s, Role.CENTRE, "rennes-1", ServiceName.NOTIFIER)
    own = {"Authorization": f"Bearer {token}"}
    url = "/centres/rennes-1/appointments"
    transport = httpx.ASGITransport(app=notifier.http_app)
    cancel = {"outcome": "cancelled", "reason_code": "doctor_absent"}
    async with httpx.AsyncClient(transport=transport, base_url="http://notifier") as http:
        early = await http.post(f"{url}/appt-1/outcome", json=cancel, headers=own)
        assert early.status_code == 409 and early.json()["error_code"] == "outcome_before_start"
        assert "« annulé » ne peut être noté" in early.json()["reasons"][0]["message"]
        bad = await http.post(
            f"{url}/appt-1/outcome", json={**cancel, "reason_code": "lunch"}, headers=own
        )
        assert bad.status_code == 422

    # The slot has started, by the door's own clock (what it judges by).
    api = notifier.http_app.state.centres_api
    notifier.http_app.state.centres_api = replace(api, clock=lambda: start + timedelta(minutes=1))
    async with (
        Tap(s.broker_url, s.namespace, "consultation.#", exchange="ingress") as door,
        httpx.AsyncClient(transport=transport, base_url="http://notifier") as http,
    ):
        sent_now = await http.post(f"{url}/appt-1/outcome", json=cancel, headers=own)
        assert sent_now.status_code == 202, sent_now.text
        assert sent_now.json()["event_type"] == "consultation.cancelled"
        await door.wait_for(lambda es: any(e.type == "consultation.cancelled" for e in es))
    [sent] = door.of_type("consultation.cancelled")
    assert (sent.data["appointment_id"], sent.data["reason_code"]) == ("appt-1", "doctor_absent")
    [message] = [m for m in door.messages if m.message_id == sent.id]
    assert message.headers["x-aiguillage-actor"] == "centre-rennes-1"

    # Applied by the scheduler's door: the day list says so; nothing corrects it.
    async with EventPublisher(s.broker_url, s.namespace, "scheduler") as pub:
        applied = ConsultationCancelled.model_validate(sent.data)
        envelope = Envelope.wrap(applied, source="scheduler", correlation_id=REFERRAL)
        await pub.publish_envelope(envelope, applied.routing_key(), exchange="events")

    async def shown() -> bool:
        from services.notifier.store.tables import centre_appointments

        [row] = await _rows(notifier, centre_appointments)
        return bool(row.status == "cancelled" and row.outcome_at is not None)

    await _until(shown)
    async with httpx.AsyncClient(transport=transport, base_url="http://notifier") as http:
        for into in ("seen", "no_show"):
            fixed = await http.post(f"{url}/appt-1/correction", json={"outcome": into}, headers=own)
            assert (
                fixed.status_code == 409 and fixed.json()["error_code"] == "appointment_cancelled"
            )
        again = await http.post(f"{url}/appt-1/outcome", json={"outcome": "seen"}, headers=own)
        assert again.json()["error_code"] == "appointment_cancelled"


def _escalation(referral_id: str, referrer: ReferrerRef) -> list[tuple[Envelope, str]]:
    """A screening request at SpO2 88 % with confusion, its contact (with the referrer)
    then its escalation by the protocol itself (its reasons are the rules' own)."""
    clinical = Clinical(
        symptomatic=True,
        severity_signs=(SeveritySign.CONFUSION,),
        vitals=Vitals(spo2=88.0),
    )
    now = datetime.now(UTC)
    outcome = decide(
        Case(age=81, clinical=clinical, referrer_kind=referrer.kind, purpose=Purpose.SCREENING),
        default_protocol(),
        now,
    )
    contact = _contact(referral_id, "pat-esc", referrer)
    regulated = ReferralRegulated(
        referral_id=referral_id,
        patient_ref="pat-esc",
        decision=outcome.decision,
        priority=outcome.priority,
        deadline=outcome.deadline,
        test_eligible=outcome.test_eligible,
        reasons=outcome.reasons,
        protocol_version=outcome.protocol_version,
        decided_by="protocol",
        decision_id=new_id(),
        age=81,
        commune_insee="35238",
        departement="35",
    )
    return [
        (Envelope.wrap(p, source="t", correlation_id=referral_id), p.routing_key())
        for p in (contact, regulated)
    ]


async def test_a_protocol_escalation_is_told_to_centre_15_once_naming_the_signs(
    settings: Settings, notifier: ServiceRuntime
) -> None:
    s = settings
    gp = ReferrerRef(kind=ReferrerKind.GP, identifier="gp-1", reply_to="gp-1")
    contact, regulated = _escalation("ref-esc-gp", gp)
    async with Tap(s.broker_url, s.namespace, "reply.#") as tap:
        async with EventPublisher(s.broker_url, s.namespace, "t") as pub:
            await pub.publish_envelope(*contact)
            await asyncio.sleep(0.5)
            for _ in range(3):  # redelivered: still told once
                await pub.publish_envelope(*regulated)
        await tap.wait_for(lambda es: len(es) >= 2)
        await asyncio.sleep(1.0)  # room for a wrong second notice
    by_key = {m.routing_key: Envelope.model_validate_json(m.body) for m in tap.messages}
    assert len(tap.messages) == 2
    # SAMU 35, which covers Rennes, on its own key (no national Centre 15 enabled).
    assert set(by_key) == {"reply.samu-35.referral.outcome", "reply.gp-1.referral.outcome"}
    for outcome in by_key.values():
        data = outcome.data
        assert data["referral_id"] == "ref-esc-gp" and data["status"] == "escalated"
        codes = [r["code"] for r in data["detail"]["reason_details"]]
        assert codes[:3] == ["escalate", "severity.spo2", "severity.sign.confusion"]
        assert "screening" in codes
        assert "SpO2 88 %" in data["detail"]["reasons"]
        assert data["detail"]["patient_ref"] == "pat-esc"
        assert data["message"] == (
            "Orientation vers le SAMU / les urgences : SpO2 88 % (< 90 %) ; "
            "confusion, somnolence ou altération de la conscience. Le Centre 15 en est "
            "informé et rappelle le patient."
        )
    rows = [r for r in await _rows(notifier, notifications) if r.referral_id == "ref-esc-gp"]
    assert sorted(r.recipient_kind for r in rows) == ["centre_15", "patient", "patient", "referrer"]
    # The patient learns who will call: Centre 15 (the SMS short, the e-mail whole).
    told = {r.channel: r.body for r in rows if r.recipient_kind == "patient"}
    assert told["sms"].startswith("Covid-19 : votre demande est transmise au SAMU-Centre 15")
    assert "qui va vous rappeler" in told["email"] and told["email"].startswith("Bonjour")


async def test_centre_15_referring_an_escalated_patient_is_told_once(
    settings: Settings, notifier: ServiceRuntime
) -> None:
    s = settings
    c15 = ReferrerRef(kind=ReferrerKind.CENTRE_15, identifier="samu-35", reply_to="samu-35")
    async with Tap(s.broker_url, s.namespace, "reply.#") as tap:
        async with EventPublisher(s.broker_url, s.namespace, "t") as pub:
            for envelope, key in _escalation("ref-esc-c15", c15):
                await pub.publish_envelope(envelope, key)
                await asyncio.sleep(0.3)
        await tap.wait_for(lambda es: len(es) >= 1)
        await asyncio.sleep(1.0)  # room for a wrong second notice
    [message] = tap.messages
    assert message.routing_key == "reply.samu-35.referral.outcome"
    assert Envelope.model_validate_json(message.body).data["status"] == "escalated"
    rows = [r for r in await _rows(notifier, notifications) if r.referral_id == "ref-esc-c15"]
    assert sorted(r.recipient_kind for r in rows) == ["patient", "patient", "referrer"]


async def test_a_waiting_patient_is_told_once_and_a_booked_one_by_the_cancellation(
    settings: Settings, notifier: ServiceRuntime
) -> None:
    """Waitlisted: the patient learns they wait, once, that a message will come with
    the appointment; a patient whose appointment was cancelled (a centre withdrawn)
    learnt it from the cancellation, and is not told a second time."""
    s = settings
    gp = ReferrerRef(kind=ReferrerKind.GP, identifier="gp-1", reply_to="gp-1")
    [_, _, (booked, _)] = _events()
    slot = booked.payload_as(SlotAssigned)

    def waiting(referral_id: str) -> ReferralWaitlisted:
        return ReferralWaitlisted(
            referral_id=referral_id,
            patient_ref="pat-w",
            priority=Priority.ROUTINE,
            departement="35",
            reason="aucun créneau libre avant l'échéance",
            waiting_in_departement=1,
        )

    async with EventPublisher(s.broker_url, s.namespace, "t") as pub:
        for referral_id in ("ref-wait", REFERRAL):
            await pub.publish(_contact(referral_id, "pat-w", gp), correlation_id=referral_id)
        await pub.publish(slot, correlation_id=REFERRAL)
        await asyncio.sleep(0.5)
        for event in (waiting("ref-wait"), waiting("ref-wait"), waiting(REFERRAL)):
            await pub.publish(event, correlation_id=event.referral_id)

    async def told() -> bool:
        rows = await _rows(notifier, notifications)
        return bool(sum(r.template == "referrer.waitlisted" for r in rows) == 3)

    await _until(told)
    rows = await _rows(notifier, notifications)
    waited = {(r.referral_id, r.channel) for r in rows if r.template == "patient.waitlisted"}
    assert waited == {("ref-wait", "email"), ("ref-wait", "sms")}
    [said] = [r.body for r in rows if r.template == "patient.waitlisted" and r.channel == "sms"]
    assert "Vous recevrez un SMS dès qu'un RDV vous sera réservé" in said


@pytest.mark.parametrize("contact_first", [True, False], ids=["contact_first", "outcome_first"])
async def test_the_referrer_is_told_from_the_contact_alone(
    settings: Settings, notifier: ServiceRuntime, contact_first: bool
) -> None:
    """No referral.received at all: the referrer is learnt from patient.contact, and an
    outcome that comes before the contact waits for it (deferred_outcomes), then is told
    once, and Centre 15 (not the referrer) once on its own key."""
    s = settings
    referral_id = f"ref-contact-{'first' if contact_first else 'last'}"
    gp = ReferrerRef(kind=ReferrerKind.GP, identifier="gp-2", reply_to="gp-2")
    contact, regulated = _escalation(referral_id, gp)
    ordered = (contact, regulated) if contact_first else (regulated, contact)
    async with Tap(s.broker_url, s.namespace, "reply.#") as tap:
        async with EventPublisher(s.broker_url, s.namespace, "t") as pub:
            for envelope, key in ordered:
                await pub.publish_envelope(envelope, key)
                await asyncio.sleep(0.5)  # each its own queue: this is the arrival order
            await pub.publish_envelope(*contact)  # redelivered: no second notice
        await tap.wait_for(lambda es: len(es) >= 2)
        await asyncio.sleep(1.0)  # room for a wrong second notice
    keys = sorted(str(m.routing_key) for m in tap.messages)
    assert keys == ["reply.gp-2.referral.outcome", "reply.samu-35.referral.outcome"]
    for message in tap.messages:
        data = Envelope.model_validate_json(message.body).data
        assert data["referral_id"] == referral_id and data["status"] == "escalated"
    rows = [r for r in await _rows(notifier, notifications) if r.referral_id == referral_id]
    assert sorted((r.recipient_kind, r.recipient) for r in rows) == [
        ("centre_15", "samu-35"),
        *[("patient", referral_id)] * 2,  # e-mail and SMS: Centre 15 will call
        ("referrer", "gp-2"),
    ]
    assert not [r for r in await _rows(notifier, deferred_outcomes) if r.referral_id == referral_id]
    [known] = [r for r in await _rows(notifier, referrers) if r.referral_id == referral_id]
    assert (known.kind, known.identifier, known.reply_to) == ("gp", "gp-2", "gp-2")


async def test_a_notice_waits_for_a_contact_later_than_its_whole_retry_budget(
    settings: Settings,
    notifier: ServiceRuntime,
    mailbox: tuple[Mailbox, int],
    gateway: tuple[Gateway, int],
) -> None:
    """In a burst the contacts queue can lag the appointments queue by more than every
    try's backoff: the patient's notices wait for the contact (their tries untouched),
    and are sent once it comes, instead of failing and being dead-lettered."""
    s = settings
    _received, contact, slot = _events()
    async with EventPublisher(s.broker_url, s.namespace, "t") as pub:
        await pub.publish_envelope(*slot)
        # Four tries of 0.2 s doubling take 1.4 s: the contact comes well after.
        await asyncio.sleep(3.0)
        waiting = [r for r in await _rows(notifier, notifications) if r.recipient_kind == "patient"]
        assert waiting and all(r.status == "pending" and r.attempts == 0 for r in waiting)
        await pub.publish_envelope(*contact)

    async def patient_told() -> bool:
        rows = await _rows(notifier, notifications)
        return sum(r.status == "sent" and r.recipient_kind == "patient" for r in rows) == 2

    await _until(patient_told, timeout=30)
    assert len(mailbox[0].delivered) == 1 and len(gateway[0].sms) == 1
    assert not await dead_letters(s.broker_url, s.namespace, "notifier", expected=1, timeout=1)


async def test_an_escalation_reaches_the_samu_covering_the_patient_and_no_other(
    settings: Settings, notifier: ServiceRuntime
) -> None:
    """Issue 28: a Rennes patient escalated by the protocol, then handed back by a centre
    (the département as the scheduler's door set it), reaches SAMU 35's reply queue (as
    the provisioning declares it for its user) with whom to call back; SAMU 75's stays
    empty, and so does the national key (the national Centre 15 is not enabled here)."""
    s = settings
    referral_id = "ref-esc-samu"
    gp = ReferrerRef(kind=ReferrerKind.GP, identifier="gp-3", reply_to="gp-3")
    contact, regulated = _escalation(referral_id, gp)
    handed_back = PatientEscalated(
        referral_id=referral_id, centre_id="rennes-1", reason="SpO2 89 %", departement="35"
    )
    specs = {samu: actor_queue(s.namespace, samu, (reply_key(samu),)) for samu in SAMUS}
    connection = await aio_pika.connect_robust(s.broker_url)
    try:
        channel = await connection.channel()
        for spec in specs.values():
            await declare_queue(channel, s.namespace, spec)
        async with Tap(s.broker_url, s.namespace, "reply.centre-15.#") as national:
            async with EventPublisher(s.broker_url, s.namespace, "t") as pub:
                await pub.publish_envelope(*contact)
                await asyncio.sleep(0.5)
                await pub.publish_envelope(*regulated)
                back = Envelope.wrap(handed_back, source="scheduler", correlation_id=referral_id)
                await pub.publish_envelope(back, handed_back.routing_key(), exchange="events")
            told = await _drain(channel, specs["samu-35"].name(s.namespace), expected=2)
            await asyncio.sleep(1.0)  # room for a wrong notice elsewhere
            assert not await _drain(channel, specs["samu-75"].name(s.namespace), expected=0)
            assert not national.messages
        for queue in specs.values():
            await channel.queue_delete(queue.name(s.namespace))
    finally:
        await connection.close()
    assert sorted(e.data["status"] for e in told) == ["escalated", "escalated_by_centre"]
    for envelope in told:
        assert envelope.data["referral_id"] == referral_id
        assert envelope.data["detail"]["patient"]["last_name"] == "Dupont"
    rows = [r for r in await _rows(notifier, notifications) if r.recipient_kind == "centre_15"]
    assert sorted(r.recipient for r in rows if r.referral_id == referral_id) == ["samu-35"] * 2


SAMUS = ("samu-35", "samu-75")


async def _drain(
    channel: Any, queue_name: str, expected: int, timeout: float = 20
) -> list[Envelope]:
    """What a reply queue holds, once it holds ``expected`` messages (or the time is up)."""
    queue = await channel.get_queue(queue_name, ensure=False)
    found: list[Envelope] = []
    for _ in range(int(timeout / 0.1)):
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            found.append(Envelope.model_validate_json(message.body))
        if len(found) >= expected:
            break
        await asyncio.sleep(0.1)
    return found


def _withdrawal(referral_id: str) -> ReferralCancelled:
    """A GP's withdrawal over intake's HTTP door, as intake puts it on the bus."""
    return ReferralCancelled(
        referral_id=referral_id,
        cancelled_by=CancelledBy.REFERRER,
        reason="le patient va mieux",
        reason_code=WithdrawalReason.PATIENT_RECOVERED,
    )


async def _on_bus(
    pub: EventPublisher, payload: Any, referral_id: str, causation_id: str | None = None
) -> Envelope:
    envelope = Envelope.wrap(
        payload, source="t", correlation_id=referral_id, causation_id=causation_id
    )
    await pub.publish_envelope(envelope, payload.routing_key(), exchange="events")
    return envelope


def _hooks(gateway: Gateway, referral_id: str, status: str = "cancelled") -> list[dict[str, Any]]:
    found = [json.loads(body) for body, _ in gateway.hooks]
    return [h for h in found if h["referral_id"] == referral_id and h["status"] == status]


async def test_a_referral_withdrawn_before_any_appointment_is_told_once(
    settings: Settings, notifier: ServiceRuntime, gateway: tuple[Gateway, int]
) -> None:
    """Withdrawn while waitlisted, or just received: no appointment is cancelled with it,
    so referral.cancelled tells the referrer (its signed webhook: cancelled, by the
    referrer, why), and the patient who had heard of it (the waitlisted one) that it is
    withdrawn; a second withdrawal changes nothing, and tells nobody."""
    s, received_hooks = settings, gateway[0]
    hook = f"http://127.0.0.1:{gateway[1]}/hook"
    gp = ReferrerRef(kind=ReferrerKind.GP, identifier="gp-4", reply_to="gp-4", webhook_url=hook)
    waiting, received = "ref-wd-waiting", "ref-wd-received"
    async with EventPublisher(s.broker_url, s.namespace, "t") as pub:
        for referral_id in (waiting, received):
            await pub.publish(_contact(referral_id, "pat-wd", gp), correlation_id=referral_id)
        listed = ReferralWaitlisted(
            referral_id=waiting,
            patient_ref="pat-wd",
            priority=Priority.ROUTINE,
            departement="35",
            reason="aucun créneau libre avant l'échéance",
            waiting_in_departement=1,
        )
        await pub.publish(listed, correlation_id=waiting)

        async def patient_told() -> bool:
            rows = await _rows(notifier, notifications)
            return bool(sum(r.template == "patient.waitlisted" for r in rows) == 2)

        await _until(patient_told)
        for referral_id in (waiting, received, waiting):  # the second changes nothing
            await _on_bus(pub, _withdrawal(referral_id), referral_id)

    async def hooked() -> bool:
        return all(_hooks(received_hooks, r) for r in (waiting, received))

    await _until(hooked)
    await asyncio.sleep(1.5)  # room for a wrong second webhook
    for referral_id in (waiting, received):
        [told] = _hooks(received_hooks, referral_id)
        assert told["detail"] == {
            "by": "referrer",
            "reason": "le patient va mieux",
            "reason_code": "patient_recovered",
            "appointment_cancelled": False,
        }
    rows = await _rows(notifier, notifications)
    said = {(r.referral_id, r.channel): r.body for r in rows if r.template == "patient.withdrawn"}
    assert set(said) == {(waiting, "email"), (waiting, "sms")}  # the received one: told nothing
    assert said[(waiting, "sms")].startswith("Covid-19 : votre médecin a retiré sa demande")
    [outcome] = [r.body for r in rows if r.referral_id == received and r.channel == "broker"]
    assert outcome == "Demande retirée (le patient va mieux)."


@pytest.mark.parametrize("withdrawal_first", [True, False], ids=["withdrawal", "cancellation"])
async def test_a_booked_referral_withdrawn_is_told_once_with_its_appointment(
    settings: Settings,
    notifier: ServiceRuntime,
    gateway: tuple[Gateway, int],
    withdrawal_first: bool,
) -> None:
    """Withdrawn with an appointment: the scheduler cancels it (appointment.cancelled,
    caused by the withdrawal), and the two events reach the notifier on two queues in
    either order. The centre is told, and the referrer and the patient once: by the
    appointment's cancellation, or by whichever of the two came first."""
    s, received_hooks = settings, gateway[0]
    _received, contact, booked = _events(webhook=f"http://127.0.0.1:{gateway[1]}/hook")
    slot = booked[0].payload_as(SlotAssigned)
    async with EventPublisher(s.broker_url, s.namespace, "t") as pub:
        await pub.publish_envelope(*contact)
        await pub.publish_envelope(*booked)

        async def appointment_told() -> bool:
            return bool(_hooks(received_hooks, REFERRAL, "appointment"))

        await _until(appointment_told)
        withdrawal = Envelope.wrap(_withdrawal(REFERRAL), source="intake", correlation_id=REFERRAL)
        cancelled = AppointmentCancelled(
            centre_id=slot.centre_id,
            appointment_id=slot.appointment_id,
            referral_id=REFERRAL,
            patient_ref=slot.patient_ref,
            start=slot.start,
            cancelled_by=CancelledBy.REFERRER,
            reason="le patient va mieux",
            reason_code=WithdrawalReason.PATIENT_RECOVERED,
        )
        if withdrawal_first:
            await pub.publish_envelope(withdrawal, "referral.cancelled", exchange="events")
            await asyncio.sleep(0.5)  # each its own queue: this is the arrival order
        await _on_bus(pub, cancelled, REFERRAL, causation_id=withdrawal.id)
        if not withdrawal_first:
            await asyncio.sleep(0.5)
            await pub.publish_envelope(withdrawal, "referral.cancelled", exchange="events")

    async def hooked() -> bool:
        return bool(_hooks(received_hooks, REFERRAL))

    await _until(hooked)
    await asyncio.sleep(1.5)  # room for a wrong second webhook
    [told] = _hooks(received_hooks, REFERRAL)
    assert told["detail"] == {
        "by": "referrer",
        "reason": "le patient va mieux",
        "reason_code": "patient_recovered",
    }
    rows = await _rows(notifier, notifications)
    templates = sorted(
        r.template for r in rows if "cancelled" in r.template or "withdrawn" in r.template
    )
    assert templates == [
        "centre.cancelled",
        "patient.cancelled",
        "patient.cancelled",
        "referrer.cancelled",
        "referrer.cancelled",
    ]


async def test_a_corrected_name_renames_the_contact_and_keeps_its_channels(
    settings: Settings, notifier: ServiceRuntime
) -> None:
    """Centre 15 corrects the patient's name (intake's patient.contact, ``corrected``):
    the notifier's copy takes the new names, and keeps the phone, e-mail and consent
    the correction does not carry."""
    s = settings
    referral_id = "ref-renamed"
    gp = ReferrerRef(kind=ReferrerKind.GP, identifier="gp-9", reply_to="gp-9")
    first = _contact(referral_id, "pat-renamed", gp)
    renamed = PatientContact(
        referral_id=referral_id,
        patient_ref="pat-renamed",
        first_name="Éloïse-Marie",
        last_name="Dupont-Lajoie",
        corrected=True,
    )
    async with EventPublisher(s.broker_url, s.namespace, "t") as pub:
        await pub.publish(first, correlation_id=referral_id)
        await asyncio.sleep(0.5)  # the contacts queue's order: the first one first
        await pub.publish(renamed, correlation_id=referral_id)

    vault = ContactVault.of(s)  # the contacts are sealed at rest (issue 34)

    async def opened() -> tuple[dict[str, str | None], bool] | None:
        async with notifier.database.transaction() as session:
            row = (
                await session.execute(select(contacts).where(contacts.c.referral_id == referral_id))
            ).first()
            return None if row is None else (await vault.contact(session, row), row.sms_consent)

    async def kept() -> bool:
        found = await opened()
        return found is not None and found[0]["first_name"] == "Éloïse-Marie"

    await _until(kept)
    found = await opened()
    assert found is not None
    clear, consent = found
    assert (clear["last_name"], clear["phone"], clear["email"], consent) == (
        "Dupont-Lajoie",
        first.phone,
        "eloise@exemple.fr",
        True,
    )
