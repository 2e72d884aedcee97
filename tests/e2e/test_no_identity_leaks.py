"""Nothing personal where it does not belong (issue 34): the four services, the console
and the Hub Santé door as processes, logging at DEBUG, run patients with recognisable
identities through every path that carries one; then every form of every value (names
in any case, the NIR with and without spaces, the phone national, dotted and E.164, the
birth date ISO and French, the e-mail lowercased) is looked for in every line each
process wrote, every message on the bus (a tap bound with ``#`` to every exchange of the
topology: body and headers), every dead-letter queue, every /metrics and the raw bytes
of every database but intake's.

The paths: a GP's submission over HTTP (booked: an SMS and an e-mail) and over FHIR, a
SAMU's on the broker door (escalated) and its correction (``referral.updated``), a Hub
Santé case and its RS-EDA-MAJ, the GP's withdrawal; refusals: a wrong NIR over HTTP,
over FHIR and on the broker, a submission in another SAMU's name, a case the hub's
schema refuses, a message that is no envelope (dead-lettered); the console's pages that
show a name (a centre's day, Centre 15's desk and files, one with a reason, the GP's
list searched by name, the DPO's log) and the patient's own page, from the SMS's link.

Allowed, as documented (docs/security.md, docs/architecture/index.md): intake's
database (sealed); the SMS and the e-mail to the patient; on the bus, what an actor
sends to a door (its submission, its correction), ``patient.contact`` to the notifier
(names, phone, e-mail) and an escalation to Centre 15 (names and phone); a dead
letter's body (kept to be replayed), never its headers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest
from aio_pika.abc import AbstractIncomingMessage

from aiguillage.demo import wait_for_consumers, wait_for_drain
from aiguillage.processes import ServiceProcesses
from shared.auth import Role, issue_token
from shared.events import Envelope, ReferralSubmitted, ReferralUpdated, Referrer, ReferrerKind
from shared.publisher import EventPublisher
from shared.settings import ServiceName, Settings
from shared.topology import (
    DEAD_LETTER_OWNERS,
    SUBSCRIPTIONS,
    dead_letter_exchange,
    dead_letter_queue,
    declare_topology,
    events_exchange,
    hubsante_queue,
    ingress_exchange,
)
from tests.browser.test_console import activate_centres, forget_centre_queues
from tests.console_session import csrf_of, log_in, person
from tests.fhir_examples import bundle as fhir_bundle
from tests.helpers import referral
from tests.hubsante_hub import DOOR, LRM, HubRouter, Lrm, answers, body, hub_vhost, oriented_case
from tests.integration.test_notifier import Gateway, Mailbox, gateway, mailbox

__all__ = ["gateway", "mailbox"]  # the fixtures: a real SMTP server, an SMS gateway

pytestmark = pytest.mark.e2e

CENTRE = "rennes-fuites"
GP = "10001234567"


@dataclass(frozen=True)
class Patient:
    first_name: str
    last_name: str
    birth_date: date
    nir: str | None  # as printed on the card, with its spaces
    phone: str | None  # national, with spaces
    email: str | None  # as typed, in mixed case
    address: str | None
    extra: dict[str, str] = field(default_factory=dict)

    def identity(self) -> dict[str, Any]:
        return {
            "first_name": self.first_name,
            "last_name": self.last_name,
            "birth_date": self.birth_date.isoformat(),
            "nir": self.nir,
            "phone": self.phone,
            "email": self.email,
            "address": self.address,
            "sms_consent": True,
            "commune_insee": "35238",
        }

    def forms(self) -> dict[str, tuple[str, ...]]:
        """Every way each value may read (compared lowercased)."""
        forms: dict[str, tuple[str, ...]] = {
            "first_name": (self.first_name,),
            "last_name": (self.last_name,),
            "birth_date": (
                self.birth_date.isoformat(),
                self.birth_date.strftime("%d/%m/%Y"),
                self.birth_date.strftime("%Y%m%d"),
                repr(self.birth_date),
            ),
            **{k: (v,) for k, v in self.extra.items()},
        }
        if self.nir:
            compact = self.nir.replace(" ", "")
            forms["nir"] = (self.nir, compact, compact[:13])
        if self.phone:
            digits = self.phone.replace(" ", "")
            forms["phone"] = (
                self.phone,
                digits,
                "+33" + digits[1:],
                digits[1:],  # 647839126: inside every form but a spaced one
                ".".join(digits[i : i + 2] for i in range(0, 10, 2)),
            )
        forms.update({k: (v,) for k, v in (("email", self.email), ("address", self.address)) if v})
        return forms


# A GP's patient (HTTP), a SAMU's (broker; corrected), a refused one.
BY_GP = Patient(
    "Yzolde",
    "Zyxwvutsrqp",
    date(1968, 11, 3),
    "2 68 11 35 238 417 76",
    "06 47 83 91 26",
    "Yzolde.Zyxwvutsrqp@Exemple-Patient.fr",
    "17 impasse Qwertzuiop",
)
BY_SAMU = Patient(
    "Gwladys",
    "Kvzmbqtrwx",
    date(1979, 4, 21),
    "1 79 04 35 238 305 72",
    "07 58 26 13 94",
    "gwladys.kvzmbqtrwx@exemple-patient.fr",
    "3 ruelle Plokijuhyg",
    extra={"corrected_first_name": "Wenceslase", "corrected_birth_date": "1979-04-12"},
)
REFUSED = Patient(
    "Ferdinande",
    "Pqjxvwmzk",
    date(1990, 6, 14),
    "2 90 06 35 238 112 95",  # the key is 96: refused
    "06 81 57 38 24",
    "ferdinande.pqjxvwmzk@exemple-patient.fr",
    "9 sente Mnbvcxzlkj",
)
RIGHT_NIR = "2 90 06 35 238 112 96"
# Centre 15's LRM on Hub Santé: the names and birth date a case carries; then corrected.
BY_HUB = Patient(
    "Brieuxine",
    "Jwqxzhtvbn",
    date(1951, 2, 27),
    None,
    None,
    None,
    None,
    extra={"corrected_last_name": "Vbqzwhxjtl"},
)
# A GP's software on the FHIR door.
BY_FHIR = Patient(
    "Oanezig",
    "Hxqtvzmwpl",
    date(1973, 8, 9),
    "1 73 08 35 238 521 20",
    "06 23 71 84 59",
    "Oanezig.Hxqtvzmwpl@Exemple-Patient.fr",
    "5 venelle Asdfghjkl",
)
PATIENTS = {
    "gp": BY_GP,
    "samu": BY_SAMU,
    "refused": REFUSED,
    "hub": BY_HUB,
    "fhir": BY_FHIR,
}
CORRECTED_BIRTH_DATE = date(1979, 4, 12)


def _compact(patient: Patient) -> str:
    return (patient.nir or "").replace(" ", "")


def found_in(text: str) -> list[str]:
    """Which patient's which value ``text`` holds, in any of its forms."""
    low = text.lower()
    return [
        f"{who}.{name}"
        for who, patient in PATIENTS.items()
        for name, forms in patient.forms().items()
        if any(form.lower() in low for form in forms)
    ]


@dataclass
class Heard:
    exchange: str
    routing_key: str
    headers: dict[str, Any]
    body: bytes

    def envelope(self) -> dict[str, Any]:
        try:
            loaded = json.loads(self.body)
        except ValueError:
            return {}
        return loaded if isinstance(loaded, dict) else {}


class BusTap:
    """One queue of the test's namespace (exclusive, auto-delete, deleted at the end),
    bound to every exchange of the topology with ``#``: everything published."""

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.heard: list[Heard] = []
        self.name = f"{settings.namespace}.tap.leaks"

    async def __aenter__(self) -> BusTap:
        ns = self.s.namespace
        await declare_topology(self.s.broker_url, ns)
        self._connection = await aio_pika.connect_robust(self.s.broker_url)
        channel = await self._connection.channel()
        queue = await channel.declare_queue(self.name, exclusive=True, auto_delete=True)
        exchanges = [events_exchange(ns), ingress_exchange(ns)]
        exchanges += [dead_letter_exchange(ns, owner) for owner in DEAD_LETTER_OWNERS]
        for exchange in exchanges:
            await queue.bind(exchange, routing_key="#")
        await queue.consume(self._on_message, no_ack=True)
        self._queue = queue
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._queue.delete(if_unused=False, if_empty=False)
        await self._connection.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self.heard.append(
            Heard(message.exchange, message.routing_key or "", dict(message.headers), message.body)
        )

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [e for h in self.heard if (e := h.envelope()).get("type") == event_type]

    async def wait_for(self, what: str, check: Any, timeout: float = 60) -> None:
        for _ in range(int(timeout / 0.1)):
            if check():
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"no {what} within {timeout} s: {[h.routing_key for h in self.heard]}")


@dataclass
class Stack:
    s: Settings
    procs: ServiceProcesses
    console: str
    tap: BusTap
    mailbox: Mailbox
    gateway: Gateway

    def api(self, service: str, role: Role, subject: str) -> httpx.AsyncClient:
        token = issue_token(self.s, role, subject, ServiceName(service))
        return httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.procs.ports[service]}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=15,
        )


@pytest.fixture
def services(
    settings: Settings,
    tmp_path: Path,
    mailbox: tuple[Mailbox, int],
    gateway: tuple[Gateway, int],
) -> Iterator[tuple[ServiceProcesses, str]]:
    """The four services and the console, at DEBUG, the patients told by SMS and e-mail."""
    procs = ServiceProcesses(
        {
            "AIGUILLAGE_ENVIRONMENT": settings.environment.value,
            "AIGUILLAGE_BROKER_URL": settings.broker_url,
            "AIGUILLAGE_NAMESPACE": settings.namespace,
            "AIGUILLAGE_DATA_DIR": str(settings.data_dir),
            "AIGUILLAGE_OUTBOX_POLL_SECONDS": "0.2",
            "AIGUILLAGE_AUTH_SECRET": settings.auth_secret,
            "AIGUILLAGE_LOG_LEVEL": "DEBUG",
            "AIGUILLAGE_CONSOLE_SECURE_COOKIES": "false",
            "AIGUILLAGE_PATIENT_CHANNELS": "sms,email",
            "AIGUILLAGE_SMTP_HOST": "127.0.0.1",
            "AIGUILLAGE_SMTP_PORT": str(mailbox[1]),
            "AIGUILLAGE_SMS_GATEWAY_URL": f"http://127.0.0.1:{gateway[1]}/sms",
        },
        tmp_path / "logs",
    )
    try:
        url = f"http://127.0.0.1:{procs.start_console()}"
        procs.env["AIGUILLAGE_PATIENT_LINK_BASE_URL"] = url
        procs.start(wait=False)  # listening awaited beside the hub's set-up
        yield procs, url
    finally:
        procs.stop_console()
        procs.stop()


@contextlib.asynccontextmanager
async def hub_door(procs: ServiceProcesses) -> AsyncIterator[Lrm]:
    """A Hub Santé of the test's own, the door as a process (its log beside the
    services'), and the LRM."""
    async with hub_vhost(procs.env["AIGUILLAGE_BROKER_URL"], (DOOR,)) as url:
        env = {**procs.env, "AIGUILLAGE_HUBSANTE_URL": url, "AIGUILLAGE_HUBSANTE_CLIENT_ID": DOOR}
        with (procs.log_dir / "hubsante.log").open("ab") as log:
            door = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "aiguillage",
                "run",
                "hubsante",
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            async with HubRouter(url, fallback=DOOR), Lrm(url) as lrm:
                yield lrm
        finally:
            door.terminate()
            await asyncio.wait_for(door.wait(), 30)


@pytest.fixture
async def stack(
    settings: Settings,
    services: tuple[ServiceProcesses, str],
    mailbox: tuple[Mailbox, int],
    gateway: tuple[Gateway, int],
) -> AsyncIterator[tuple[Stack, Lrm]]:
    procs = services[0]
    procs.log_dir.mkdir(parents=True, exist_ok=True)
    async with BusTap(settings) as tap, hub_door(procs) as lrm:
        await asyncio.to_thread(procs.wait_listening)
        try:
            yield Stack(settings, procs, services[1], tap, mailbox[0], gateway[0]), lrm
        finally:
            await forget_centre_queues(settings, CENTRE)
            connection = await aio_pika.connect(settings.broker_url)
            async with connection:  # the door's queue of Centre 15's answers
                channel = await connection.channel()
                await channel.queue_delete(
                    hubsante_queue(settings.namespace).name(settings.namespace)
                )


# -- the flow ------------------------------------------------------------------------


async def _gp_refers(st: Stack) -> str:
    """A GP's patient over HTTP, booked: an SMS and an e-mail."""
    submission = {
        "referrer": {"kind": "gp", "identifier": GP, "reply_to": "fuites"},
        "reference": "fuites-gp",
        "patient": BY_GP.identity(),
        "clinical": {"symptomatic": True, "vitals": {"spo2": 97, "respiratory_rate": 16}},
    }
    async with st.api("intake", Role.REFERRER, f"gp:{GP}") as gp:
        created = await gp.post("/referrals", json=submission)
        assert created.status_code == 201, created.text
        referral_id: str = created.json()["referral_id"]
    await st.tap.wait_for(
        "booking",
        lambda: any(
            e["data"]["referral_id"] == referral_id for e in st.tap.of_type("slot.assigned")
        ),
    )
    await st.tap.wait_for("SMS and e-mail", lambda: st.gateway.sms and st.mailbox.delivered)
    return referral_id


async def _samu_refers_and_corrects(st: Stack) -> str:
    """A SAMU's severe patient on the broker door: escalated; then its correction."""
    s = st.s
    samu = Referrer(kind=ReferrerKind.CENTRE_15, identifier="samu-35", reply_to="samu-35")
    identity = {k: v for k, v in BY_SAMU.identity().items() if k != "commune_insee"}
    submission: ReferralSubmitted = referral("fuites-samu", severe=True, **identity)
    async with EventPublisher(s.broker_url, s.namespace, "lrm", actor="samu-35") as lrm:
        await lrm.publish(submission.model_copy(update={"referrer": samu}), correlation_id="f")
        await st.tap.wait_for("escalation", lambda: _escalated(st.tap))
        acks = st.tap.of_type("submission.acknowledged")
        [ack] = [a for a in acks if a["data"].get("reference") == "fuites-samu"]
        referral_id: str = ack["data"]["referral_id"]
        correction = ReferralUpdated(
            referral_id=referral_id,
            first_name=BY_SAMU.extra["corrected_first_name"],
            birth_date=CORRECTED_BIRTH_DATE,
        )
        await lrm.publish(correction, correlation_id=referral_id)
    await st.tap.wait_for(
        "corrected contact",
        lambda: any(e["data"].get("corrected") for e in st.tap.of_type("patient.contact")),
    )
    return referral_id


def _escalated(tap: BusTap) -> bool:
    return any(e["data"].get("status") == "escalated" for e in tap.of_type("referral.outcome"))


async def _hub_refers_and_corrects(st: Stack, lrm: Lrm) -> None:
    """Centre 15's LRM on Hub Santé: a case oriented to a consultation, booked; then its
    RS-EDA-MAJ correcting the last name."""
    case_id = f"{LRM}.DRFR15350000042"
    case = oriented_case(case_id)
    patient = case["createCaseHealth"]["patient"][0]
    patient["identity"] = {
        "nonStrictFeatures": {
            "complete": f"{BY_HUB.first_name} {BY_HUB.last_name}",
            "firstName": BY_HUB.first_name,
            "lastName": BY_HUB.last_name,
        },
        "strictFeatures": {"sex": "F", "birthDate": BY_HUB.birth_date.isoformat()},
    }
    message = lrm.case(DOOR, case)
    await lrm.publish(message)
    ack = await lrm.wait_for(answers(message["distributionID"]), timeout=60)
    assert ack["distributionKind"] == "Ack", body(ack)
    await lrm.wait_for(lambda m: "appointment" in body(m), timeout=60)
    corrected = BY_HUB.extra["corrected_last_name"]
    names = {"complete": f"{BY_HUB.first_name} {corrected}", "lastName": corrected}
    update = {
        "caseId": case_id,
        "patient": [{"patientId": patient["patientId"], "identity": {"nonStrictFeatures": names}}],
    }
    maj = lrm.case(DOOR, {"createCaseHealthUpdate": update}, kind="Update")
    await lrm.publish(maj)
    done = await lrm.wait_for(answers(maj["distributionID"]), timeout=60)
    assert done["distributionKind"] == "Ack", body(done)
    await st.tap.wait_for(
        "the hub's correction",
        lambda: any(
            e["data"].get("last_name") == corrected for e in st.tap.of_type("patient.contact")
        ),
    )


def _fhir_patient(patient: Patient, nir: str) -> dict[str, Any]:
    commune = {"url": "https://aiguillage.fr/fhir/StructureDefinition/commune-insee"}
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:1.2.250.1.213.1.4.8", "value": nir}],
        "name": [{"use": "official", "family": patient.last_name, "given": [patient.first_name]}],
        "birthDate": patient.birth_date.isoformat(),
        "gender": "female",
        "telecom": [
            {"system": "phone", "value": patient.phone, "use": "mobile"},
            {"system": "email", "value": patient.email},
        ],
        "extension": [
            {
                "url": "https://aiguillage.fr/fhir/StructureDefinition/sms-consent",
                "valueBoolean": True,
            }
        ],
        "address": [{"line": [patient.address], "extension": [{**commune, "valueCode": "35238"}]}],
    }


async def _fhir_refers(st: Stack) -> None:
    """A GP's software posts a FHIR transaction: booked; then one with a wrong NIR."""
    token = issue_token(st.s, Role.REFERRER, f"gp:{GP}", ServiceName.INTAKE)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{st.procs.ports['intake']}",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"},
        timeout=15,
    ) as software:
        for reference, patient, nir, expected in (
            ("fuites-fhir", BY_FHIR, BY_FHIR.nir, 200),
            ("fuites-fhir-2", REFUSED, REFUSED.nir, 422),
        ):
            transaction = fhir_bundle(reference)
            transaction["entry"][0]["resource"] = _fhir_patient(patient, nir or "")
            sent = await software.post("/fhir", json=transaction)
            assert sent.status_code == expected, sent.text
            if expected == 200:
                referral_id = sent.json()["entry"][0]["resource"]["id"]
    await st.tap.wait_for(
        "the FHIR referral's booking",
        lambda: any(
            e["data"]["referral_id"] == referral_id for e in st.tap.of_type("slot.assigned")
        ),
    )


async def _hub_refused(lrm: Lrm) -> None:
    """A case the hub's schema refuses (a birth date written the French way): the LRM
    is answered an RS-ERROR, which may quote it back; nothing else may."""
    case = oriented_case(f"{LRM}.DRFR15350000043")
    case["createCaseHealth"]["patient"][0]["identity"] = {
        "nonStrictFeatures": {"firstName": REFUSED.first_name, "lastName": REFUSED.last_name},
        "strictFeatures": {"sex": "F", "birthDate": REFUSED.birth_date.strftime("%d/%m/%Y")},
    }
    message = lrm.case(DOOR, case)
    await lrm.publish(message)
    error = await lrm.wait_for(answers(message["distributionID"]), timeout=60)
    assert error["distributionKind"] == "Error", body(error)


async def _refused(st: Stack) -> None:
    """A wrong NIR over HTTP and on the broker, a submission in another's name, and a
    message that is no envelope."""
    s = st.s
    wrong = {
        "referrer": {"kind": "gp", "identifier": GP, "reply_to": "fuites"},
        "reference": "fuites-refused",
        "patient": REFUSED.identity(),
        "clinical": {"symptomatic": True, "vitals": {"spo2": 97}},
    }
    async with st.api("intake", Role.REFERRER, f"gp:{GP}") as gp:
        answer = await gp.post("/referrals", json=wrong)
        assert answer.status_code == 422, answer.text
    body = json.dumps({"type": "referral.submitted", "id": str(uuid.uuid4()), **wrong}).encode()
    # On the broker: a valid submission, its NIR's key then made wrong.
    right = {**REFUSED.identity(), "nir": RIGHT_NIR}
    valid = referral("fuites-refused-2", **{k: v for k, v in right.items() if k != "commune_insee"})
    envelope = Envelope.wrap(valid, source="gp", correlation_id="fuites-refused")
    wrong_key = envelope.model_dump_json().replace(RIGHT_NIR.replace(" ", ""), _compact(REFUSED))
    assert _compact(REFUSED) in wrong_key
    async with EventPublisher(s.broker_url, s.namespace, "gp") as gp_bus:
        await gp_bus.publish_raw(wrong_key.encode(), "referral.submitted", message_id=envelope.id)
        await gp_bus.publish_raw(body, "referral.submitted", message_id=str(uuid.uuid4()))
    # SAMU 35 in SAMU 22's name: refused at the door (sender_inconsistent).
    other = Referrer(kind=ReferrerKind.CENTRE_15, identifier="samu-22", reply_to="samu-35")
    async with EventPublisher(s.broker_url, s.namespace, "lrm", actor="samu-35") as lrm:
        await lrm.publish(valid.model_copy(update={"referrer": other}), correlation_id="x")
    await st.tap.wait_for("refusal", lambda: st.tap.of_type("submission.error"))
    await st.tap.wait_for("door's refusal", lambda: st.tap.of_type("request.refused"))
    await st.tap.wait_for(
        "dead letter",
        lambda: any(
            h.exchange == dead_letter_exchange(s.namespace, "intake") for h in st.tap.heard
        ),
    )


@contextlib.asynccontextmanager
async def _logged_in(st: Stack, login: str, role: Role, actor: str) -> AsyncIterator[Any]:
    password = person(st.s, login, "Personne", role, actor)
    async with httpx.AsyncClient(base_url=st.console, timeout=15) as browser:
        assert (await log_in(browser, login, password)).status_code == 303
        yield browser


async def _console_pages(st: Stack, gp_referral: str, samu_referral: str) -> None:
    """The pages that show a name, as their people open them: a centre's day, Centre
    15's desk and files (one with a reason), the GP's list searched by name, the DPO's
    log of reads; and the patient's own page, from the link in the SMS."""
    async with _logged_in(st, "accueil@fuites.fr", Role.CENTRE, CENTRE) as centre:
        day = await centre.get("/centre")
        assert BY_GP.last_name in day.text, day.text[-2000:]
    async with _logged_in(st, "regulateur@samu35.fr", Role.CENTRE_15, "samu-35") as regulator:
        assert (await regulator.get("/centre-15")).status_code == 200
        own = await regulator.get(f"/centre-15/dossiers/{samu_referral}")
        assert BY_SAMU.last_name in own.text, own.text[-2000:]
        other = await regulator.get(f"/centre-15/dossiers/{gp_referral}")
        asked = await regulator.post(
            f"/centre-15/dossiers/{gp_referral}/identite",
            data={"csrf": csrf_of(other.text), "motif": "rappel du patient"},
        )
        assert BY_GP.last_name in asked.text, asked.text[-2000:]
    async with _logged_in(st, "dr.fuites@exemple.fr", Role.REFERRER, f"gp-{GP}") as gp:
        found = await gp.get("/mes-demandes", params={"q": BY_GP.last_name.upper()})
        assert BY_GP.last_name in found.text, found.text[-2000:]
    async with _logged_in(st, "dpo@fuites.fr", Role.DPO, "dpo") as dpo:
        reads = await dpo.get("/protection-des-donnees", params={"compte": "regulateur@samu35.fr"})
        assert reads.status_code == 200, reads.text[-2000:]
    links = re.findall(r"https?://\S+/patient/[^\s\"]+", json.dumps(st.gateway.sms))
    assert links, st.gateway.sms
    async with httpx.AsyncClient(timeout=15) as patient:
        assert (await patient.get(links[0].rstrip(".,"))).status_code == 200


async def _gp_withdraws(st: Stack, referral_id: str) -> None:
    async with st.api("intake", Role.REFERRER, f"gp:{GP}") as gp:
        done = await gp.post(
            f"/referrals/{referral_id}/withdraw", json={"reason": "patient_recovered"}
        )
        assert done.status_code == 200, done.text
    to_gp_patient = "+33" + (BY_GP.phone or "").replace(" ", "")[1:]
    await st.tap.wait_for(
        "withdrawal SMS", lambda: [m["to"] for m in st.gateway.sms].count(to_gp_patient) == 2
    )


async def _settled(s: Settings) -> None:
    """Every queue of the services empty, and the outboxes' last rows out."""
    for spec in (spec for specs in SUBSCRIPTIONS.values() for spec in specs):
        await wait_for_drain(s.broker_url, spec.name(s.namespace))
    await asyncio.sleep(1)  # an outbox polled every 0.2 s: its last rows published


# -- where to look -------------------------------------------------------------------

# What may carry which values on the bus (docs/security.md): the actors' own messages
# to intake's door, the contact the notifier needs, an escalation to Centre 15.
_ACTORS_OWN = re.compile(r"^referral\.(submitted|updated)$")
_NAMES_AND_CONTACT = {
    "first_name",
    "last_name",
    "corrected_first_name",
    "corrected_last_name",
    "phone",
    "email",
}


def _allowed_on_bus(s: Settings, heard: Heard, value: str) -> bool:
    field_name = value.split(".", 1)[1]
    if heard.exchange == ingress_exchange(s.namespace):
        return bool(_ACTORS_OWN.match(heard.routing_key))
    if heard.exchange == events_exchange(s.namespace):
        if heard.routing_key == "contact.notifier":
            return field_name in _NAMES_AND_CONTACT
        if re.fullmatch(r"reply\.samu-\d+\.referral\.outcome", heard.routing_key):
            return field_name in _NAMES_AND_CONTACT - {"email"}
        return False
    # A dead letter keeps the body it came with (to be replayed): as allowed as that.
    death = (heard.headers.get("x-death") or [{}])[0]
    keys = [str(k) for k in death.get("routing-keys", [])]
    keys.append(str(heard.headers.get("x-original-routing-key", "")))
    return any(_ACTORS_OWN.match(k) for k in keys)


def _bus_leaks(st: Stack) -> list[str]:
    leaks = []
    for heard in st.tap.heard:
        where = f"{heard.exchange} {heard.routing_key}"
        for value in found_in(json.dumps(heard.headers, default=str)):
            leaks.append(f"bus header: {where}: {value}")
        for value in found_in(heard.body.decode("utf-8", "replace")):
            if not _allowed_on_bus(st.s, heard, value):
                leaks.append(f"bus body: {where}: {value}")
    return leaks


async def _dead_letter_leaks(s: Settings) -> tuple[int, list[str]]:
    """Each dead-letter queue read whole: headers only (the body is the message's)."""
    leaks, count = [], 0
    connection = await aio_pika.connect(s.broker_url)
    async with connection:
        channel = await connection.channel()
        for owner in DEAD_LETTER_OWNERS:
            queue = await channel.declare_queue(dead_letter_queue(s.namespace, owner), passive=True)
            while (message := await queue.get(fail=False, no_ack=True)) is not None:
                count += 1
                headers = json.dumps(dict(message.headers), default=str)
                leaks += [f"dead letter of {owner}: header {v}" for v in found_in(headers)]
                assert "Traceback" not in headers and 'File "' not in headers, headers
    return count, leaks


def _log_leaks(procs: ServiceProcesses) -> list[str]:
    leaks = []
    for log in sorted(procs.log_dir.glob("*.log")):
        for number, line in enumerate(log.read_text(errors="replace").splitlines(), 1):
            leaks += [f"{log.name}:{number}: {v}: {line[:300]}" for v in found_in(line)]
    return leaks


async def _metrics_leaks(st: Stack) -> list[str]:
    leaks = []
    async with httpx.AsyncClient(timeout=15) as http:
        for service in ServiceName:
            port = st.procs.ports[service.value]
            metrics = await http.get(f"http://127.0.0.1:{port}/metrics")
            assert metrics.status_code == 200
            leaks += [f"/metrics of {service.value}: {v}" for v in found_in(metrics.text)]
    return leaks


def _database_leaks(s: Settings) -> dict[str, list[str]]:
    """The raw bytes of each database but intake's (and its journal files)."""
    leaks: dict[str, list[str]] = {}
    for path in sorted(s.data_dir.glob("*.db*")):
        owner = path.name.split(".", 1)[0]
        if owner == ServiceName.INTAKE.value:
            continue
        text = path.read_bytes().decode("latin-1")
        leaks.setdefault(owner, []).extend(f"{path.name}: {v}" for v in found_in(text))
    return leaks


async def test_no_identity_outside_intake_and_the_patient_s_channels(
    stack: tuple[Stack, Lrm],
) -> None:
    (st, lrm), s = stack, stack[0].s
    await wait_for_consumers(s.broker_url, s.namespace, timeout=60)
    await activate_centres(s, (CENTRE, "35238"))
    await wait_for_drain(s.broker_url, f"{s.namespace}.notifier.centres")
    gp_referral = await _gp_refers(st)
    samu_referral = await _samu_refers_and_corrects(st)
    await _hub_refers_and_corrects(st, lrm)
    await _hub_refused(lrm)
    await _fhir_refers(st)
    await _refused(st)
    await _console_pages(st, gp_referral, samu_referral)
    await _gp_withdraws(st, gp_referral)
    await _settled(s)

    # The search finds what it looks for: the channels that must carry them do.
    assert "gp.phone" in found_in(json.dumps(st.gateway.sms))
    mail = b"".join(m.content for m in st.mailbox.delivered).decode("utf-8", "replace")
    assert "gp.email" in found_in(" ".join(m.rcpt_tos[0] for m in st.mailbox.delivered))
    assert found_in(mail)
    contacts = [h for h in st.tap.heard if h.routing_key == "contact.notifier"]
    assert "samu.corrected_first_name" in found_in(b"".join(h.body for h in contacts).decode())

    dead, dead_leaks = await _dead_letter_leaks(s)
    assert dead >= 1
    leaks = _log_leaks(st.procs) + _bus_leaks(st) + dead_leaks + await _metrics_leaks(st)
    databases = _database_leaks(s)
    assert set(databases) >= {"regulation", "scheduler", "notifier", "console", "hubsante"}
    # The notifier holds the contacts it needs (sealed): its bytes were worth reading.
    with contextlib.closing(
        sqlite3.connect(f"file:{s.data_dir / 'notifier.db'}?mode=ro", uri=True)
    ) as db:
        assert db.execute("SELECT count(*) FROM contacts").fetchone()[0] >= 3
    leaks += [leak for owner, found in databases.items() for leak in found]
    assert not leaks, "\n".join(leaks[:80])
