"""What the patient and the referrer read, for every event and cause: each sentence
true for its case, every SMS in two segments of the GSM alphabet."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest

from aiguillage.scenario import ILE_DE_FRANCE, RENNES
from aiguillage.wave import idf_2020_03
from services.notifier.domain import patient_notices as notices
from services.notifier.domain import sms, templates
from services.notifier.domain.patient_notices import PatientNotice, Visit
from shared.geo import communes
from shared.patient_link import issue_link, link_url

START = datetime(2020, 3, 25, 15, 40, tzinfo=UTC)  # a Wednesday, 16h40 in Paris
BEFORE = datetime(2020, 3, 25, 9, 0, tzinfo=UTC)
LINK = "https://rdv.example/patient/p1.a.b.1.sig"
POTERIE = Visit(START, "École de la Poterie", "12 rue de la Poterie", "35238")
KINDS = ("gp", "centre_15", "sos_medecins", "emergency_department", None)
MOVERS = ("service", "patient", "regulator", "centre", None)
CANCELLERS = ("patient", "referrer", "service", "regulator", "centre")


def _longest_link() -> str:
    """Our ids are UUIDs, the expiry ten digits: the token is as long as it gets; the
    address a regional deployment might have in front of it."""
    token = issue_link("k", "a" * 8 + "-bbbb-cccc-dddd-" + "e" * 12, "f" * 36, 4102444800)
    return link_url("https://aiguillage.ars-iledefrance.sante.fr", token)


def _longest_visits() -> list[Visit]:
    """The longest commune of the data, the longest centre names of the scenarios (the
    Île-de-France wave's in its longest commune), and a name and an address at the
    bounds of ``centre.activated``."""
    longest = max(communes(), key=lambda c: len(c.name))
    names = [name for _, name, *_ in RENNES + ILE_DE_FRANCE]
    names += [c.name for c in idf_2020_03(date(2020, 3, 29)).centres]
    named = max(names, key=len)
    wave = "Centre Covid adossé à l'hôpital Saint-Remy-en-Bouzemont-Saint-Genest-et-Isson n° 155"
    return [
        Visit(START, named, "2 rue Henri Le Guilloux", "35238"),
        Visit(START, wave, "Place de la Mairie", longest.insee),
        Visit(START, "É" * 200, "â" * 300, longest.insee),
        Visit(START, "Centre", None, "97411"),  # Saint-Denis (La Réunion)
    ]


def _every_notice(visit: Visit, link: str | None) -> list[PatientNotice]:
    found = [notices.appointment(visit, kind, link) for kind in KINDS]
    found += [
        notices.moved(visit, BEFORE, by, "centre suspendu : " + "x" * 500, link) for by in MOVERS
    ]
    found += [
        notices.cancelled(visit.start, by, "y" * 500, kind) for by in CANCELLERS for kind in KINDS
    ]
    for decision in ("escalate", "home_follow_up", "refuse"):
        for lead in ("screening", "asymptomatic", "home.mild", None):
            found += [n for kind in KINDS if (n := notices.decided(decision, lead, kind))]
    found += [notices.withdrawn(by, "z" * 500, kind) for by in CANCELLERS for kind in KINDS]
    return found + [notices.waitlisted(kind) for kind in KINDS]


@pytest.mark.parametrize("visit", _longest_visits(), ids=lambda v: v.centre[:20])
@pytest.mark.parametrize("link", [_longest_link(), None], ids=["link", "no-link"])
def test_every_sms_fits_two_gsm_segments(visit: Visit, link: str | None) -> None:
    for notice in _every_notice(visit, link):
        size = sms.measure(notice.sms)
        assert size.encoding == "GSM-7" and size.segments <= 2, (notice.template, notice.sms)
        if link is not None and notice.template in ("patient.new_patient", "patient.rescheduled"):
            # The link whole, last (nothing glued to it), the day and time before it.
            assert notice.sms.endswith(f" : {link}"), notice.sms
            assert "mercredi 25/03 à 16h40 (heure de Paris)" in notice.sms
        elif notice.template not in ("patient.new_patient", "patient.rescheduled"):
            # Without an appointment, what to do if worse always fits (an appointment's
            # SMS gives way to the place first; its e-mail and page say it).
            assert "appelez le 15" in notice.sms or notice.template == "patient.refused"


def test_the_e_mail_keeps_the_whole_text() -> None:
    notice = notices.appointment(POTERIE, "gp", LINK)
    assert notice.body("email") == notice.body("record") == notice.text
    assert notice.body("sms") == notice.sms
    assert "« École de la Poterie »" in notice.text and "muni d'un masque" in notice.text
    assert sms.measure(notice.text).segments > 2


# -- every (event, cause), and what each reader is told ------------------------------


@dataclass(frozen=True)
class Told:
    event: str
    cause: str
    patient_sms: str | None  # None: the patient is not told (why: the cause)
    patient_email: str | None
    referrer: str


_WORSE = "En cas d'aggravation (difficulté à respirer, malaise), appelez le 15."
_AT = "mercredi 25/03 à 16h40 (heure de Paris)"
_WHEN = "25/03/2020 à 16h40 (heure de Paris)"
_WAS = "25/03/2020 à 10h00 (heure de Paris)"
_THERE = "au centre « École de la Poterie », 12 rue de la Poterie, Rennes"
_SMS_THERE = "École de la Poterie, 12 rue de la Poterie, Rennes. Si aggravation, appelez le 15."
_LINK_LINE = (
    f"Pour voir votre rendez-vous, l'annuler ou demander un autre créneau : {LINK} "
    "(lien personnel, valable jusqu'à la fin du rendez-vous)."
)
_REF_AT = f"le {_WHEN}, École de la Poterie."
_SPO2 = ("severity.spo2", "SpO2 88 % en air ambiant, en dessous de 90 %.")

TABLE = [
    Told(
        "slot.assigned",
        "booked (a new referral, a waiting patient, a new decision)",
        f"RDV Covid-19 {_AT}, {_SMS_THERE} Voir, annuler, changer : {LINK}",
        f"Bonjour, à la suite de l'avis de votre médecin, un rendez-vous de consultation vous "
        f"est réservé le {_WHEN} {_THERE}. Présentez-vous à l'heure, muni d'un masque si vous "
        f"en avez un. {_WORSE} {_LINK_LINE}",
        f"Rendez-vous attribué {_REF_AT} Test à prescrire : oui.",
    ),
    Told(
        "appointment.rescheduled",
        "moved_by service: the centre suspended or closed by the ARS",
        f"RDV Covid-19 déplacé (centre fermé) : {_AT}, {_SMS_THERE} Voir, annuler, changer : "
        f"{LINK}",
        f"Bonjour, le centre où vous aviez rendez-vous le {_WAS} ne peut plus vous recevoir "
        f"(centre suspendu : plus de médecin). Votre rendez-vous est déplacé : le {_WHEN} "
        f"{_THERE}. {_WORSE} {_LINK_LINE}",
        f"Rendez-vous déplacé : {_REF_AT} Motif : centre suspendu : plus de médecin. Test à "
        "prescrire : oui.",
    ),
    Told(
        "appointment.rescheduled",
        "moved_by centre: the consultation cancelled at the centre (consultation.cancelled), "
        "booked again at once",
        f"RDV Covid-19 annulé par le centre, nouveau RDV : {_AT}, {_SMS_THERE} Voir, annuler, "
        f"changer : {LINK}",
        f"Bonjour, le centre n'a pas pu assurer votre consultation du {_WAS} (médecin "
        "absent). Un nouveau rendez-vous vous est réservé : le "
        f"{_WHEN} {_THERE}. {_WORSE} {_LINK_LINE}",
        f"Rendez-vous déplacé : {_REF_AT} Le centre n'a pas pu assurer la consultation "
        "(médecin absent). Test à prescrire : oui.",
    ),
    Told(
        "appointment.rescheduled",
        "moved_by patient: another slot asked from the link",
        f"RDV Covid-19 changé comme demandé : {_AT}, {_SMS_THERE} Voir, annuler, changer : {LINK}",
        f"Bonjour, comme vous l'avez demandé, votre rendez-vous du {_WAS} est déplacé : le "
        f"{_WHEN} {_THERE}. {_WORSE} {_LINK_LINE}",
        f"Rendez-vous déplacé : {_REF_AT} Motif : à la demande du patient (lien de l'avis de "
        "rendez-vous). Test à prescrire : oui.",
    ),
    Told(
        "appointment.rescheduled",
        "moved_by regulator: a raised priority, an earlier slot",
        f"RDV Covid-19 avancé : {_AT}, {_SMS_THERE} Voir, annuler, changer : {LINK}",
        f"Bonjour, un médecin a revu la priorité de votre demande : votre rendez-vous du "
        f"{_WAS} est avancé : le {_WHEN} {_THERE}. {_WORSE} {_LINK_LINE}",
        f"Rendez-vous déplacé : {_REF_AT} Motif : priorité « dès que possible » décidée par "
        "DR-1. Test à prescrire : oui.",
    ),
    Told(
        "appointment.cancelled",
        "replaced_by: the old slot of a move (told with the new one)",
        None,
        None,
        "",
    ),
    Told(
        "appointment.cancelled",
        "cancelled_by patient: from the link (the referral withdrawn)",
        f"RDV Covid-19 du {_AT} annulé comme demandé. Besoin d'un avis ? Contactez votre "
        "médecin. Si aggravation, appelez le 15.",
        f"Bonjour, votre rendez-vous du {_WHEN} est annulé, comme vous l'avez demandé. "
        "Personne ne vous recontactera à ce sujet : si vous avez encore besoin d'un avis "
        f"médical, contactez votre médecin. {_WORSE}",
        "Rendez-vous annulé par le patient (depuis le lien de son avis).",
    ),
    Told(
        "appointment.cancelled",
        "cancelled_by referrer: the GP withdrew it (reason_code patient_recovered)",
        f"RDV Covid-19 du {_AT} annulé : votre médecin a retiré sa demande. Aucun autre RDV "
        "ne sera proposé. Si aggravation, appelez le 15.",
        f"Bonjour, votre rendez-vous du {_WHEN} est annulé : votre médecin a retiré sa "
        "demande de consultation. Aucun autre rendez-vous ne vous sera proposé ; pour toute "
        f"question, contactez votre médecin. {_WORSE}",
        "Demande retirée : rendez-vous annulé (le patient va mieux).",
    ),
    Told(
        "appointment.cancelled",
        "cancelled_by referrer: Centre 15 withdrew it (Hub Santé)",
        f"RDV Covid-19 du {_AT} annulé : le Centre 15 (SAMU) a retiré sa demande. Aucun autre "
        "RDV ne sera proposé. Si aggravation, appelez le 15.",
        f"Bonjour, votre rendez-vous du {_WHEN} est annulé : le Centre 15 (SAMU) a retiré sa "
        "demande de consultation. Aucun autre rendez-vous ne vous sera proposé ; pour toute "
        f"question, contactez le Centre 15. {_WORSE}",
        "Demande retirée : rendez-vous annulé (case cancelled by the LRM (Hub Santé)).",
    ),
    Told(
        "appointment.cancelled",
        "cancelled_by service: the centre withdrawn, no other slot (waitlisted)",
        f"RDV Covid-19 du {_AT} annulé : le centre ne peut plus vous recevoir. Vous recevrez "
        "un SMS dès qu'un nouveau RDV vous sera réservé. Si aggravation, appelez le 15.",
        f"Bonjour, votre rendez-vous du {_WHEN} est annulé : le centre ne peut plus vous "
        "recevoir (motif : centre suspendu : plus de médecin), et aucun autre créneau n'est "
        "libre pour l'instant près de chez vous. Vous êtes en liste d'attente : vous recevrez "
        f"un nouveau message dès qu'un rendez-vous vous sera réservé. {_WORSE}",
        "Rendez-vous annulé (centre suspendu : plus de médecin).",
    ),
    Told(
        "appointment.cancelled",
        "cancelled_by regulator: a new decision (told next) or Centre 15's withdrawal",
        f"RDV Covid-19 du {_AT} annulé : un médecin régulateur a revu votre demande. Si "
        "aggravation, appelez le 15.",
        f"Bonjour, votre rendez-vous du {_WHEN} est annulé : un médecin régulateur a revu "
        "votre demande (décision de régulation : suivi à domicile par le médecin traitant). "
        f"{_WORSE}",
        "Rendez-vous annulé (décision de régulation : suivi à domicile par le médecin traitant).",
    ),
    Told(
        "appointment.cancelled",
        "cancelled_by centre: the consultation cancelled at the centre, no other slot (waitlisted)",
        f"RDV Covid-19 du {_AT} annulé par le centre. Vous recevrez un SMS dès qu'un nouveau "
        "RDV vous sera réservé. Si aggravation, appelez le 15.",
        f"Bonjour, votre rendez-vous du {_WHEN} est annulé par le centre (motif : médecin "
        "absent), et aucun autre créneau n'est libre pour "
        "l'instant près de chez vous. Vous êtes en liste d'attente : vous recevrez un nouveau "
        f"message dès qu'un rendez-vous vous sera réservé. {_WORSE}",
        "Rendez-vous annulé par le centre (médecin absent).",
    ),
    Told(
        "referral.cancelled",
        "withdrawn by the GP before any appointment, the patient told before (waitlisted)",
        "Covid-19 : votre médecin a retiré sa demande de consultation. Aucun RDV ne sera "
        "proposé. Si aggravation, appelez le 15.",
        "Bonjour, votre médecin a retiré sa demande de consultation pour vous. Aucun "
        "rendez-vous ne vous sera proposé ; pour toute question, contactez votre médecin. "
        f"{_WORSE}",
        "Demande retirée (le patient va mieux).",
    ),
    Told(
        "referral.cancelled",
        "withdrawn before any appointment, the patient never told (received, held)",
        None,
        None,
        "Demande retirée (le patient va mieux).",
    ),
    Told(
        "referral.cancelled",
        "withdrawn with its appointment: told by appointment.cancelled (referrer_cancelled)",
        None,
        None,
        "",
    ),
    Told(
        "referral.regulated",
        "escalate: Centre 15 has the contact and lists the patient to call back",
        "Covid-19 : votre demande est transmise au SAMU-Centre 15, qui va vous rappeler. Si "
        "votre état s'aggrave d'ici là, appelez le 15.",
        "Bonjour, votre état demande un avis médical urgent, qu'un centre de consultation ne "
        "peut pas donner : votre demande est transmise au SAMU-Centre 15, qui va vous "
        "rappeler. Si votre état s'aggrave d'ici là (difficulté à respirer, malaise), "
        "n'attendez pas : appelez le 15.",
        "Orientation vers le SAMU / les urgences : SpO2 88 % (< 90 %). Le Centre 15 en est "
        "informé et rappelle le patient.",
    ),
    Told(
        "referral.regulated",
        "home_follow_up, referred by the GP: the GP follows up",
        "Covid-19 : pas de consultation en centre. Votre médecin traitant assure le suivi. Si "
        "aggravation, appelez le 15.",
        "Bonjour, après avis médical, une consultation au centre n'est pas nécessaire : votre "
        f"médecin traitant assure le suivi à domicile. {_WORSE}",
        "Suivi à domicile par le médecin traitant. Motif : Tableau bénin adressé par le "
        "Centre 15 : suivi à domicile par le médecin traitant.",
    ),
    Told(
        "referral.regulated",
        "home_follow_up, referred by Centre 15: nobody tells the GP, the patient is asked to",
        "Covid-19 : pas de consultation en centre. Le suivi se fait avec votre médecin "
        "traitant : contactez-le. Si aggravation, appelez le 15.",
        "Bonjour, après avis médical, une consultation au centre n'est pas nécessaire : le "
        "suivi se fait à domicile avec votre médecin traitant ; prenez contact avec lui. "
        f"{_WORSE}",
        "Suivi à domicile par le médecin traitant. Motif : Tableau bénin adressé par le "
        "Centre 15 : suivi à domicile par le médecin traitant.",
    ),
    Told(
        "referral.regulated",
        "refuse: a screening request (or no symptom)",
        "Covid-19 : pas de consultation en centre, ces centres ne font pas de dépistage. Si "
        "des symptomes apparaissent, contactez votre médecin.",
        "Bonjour, votre demande de consultation n'a pas été retenue : les centres de "
        "consultation Covid-19 reçoivent les personnes qui ont des symptômes, et ne font pas "
        f"de dépistage. Si des symptômes apparaissent, contactez votre médecin. {_WORSE}",
        "Demande refusée : Demande de dépistage : les centres de consultation ne sont pas des "
        "centres de dépistage.",
    ),
    Told(
        "referral.regulated",
        "refuse: a regulator's, for another reason",
        "Covid-19 : votre demande de consultation en centre n'est pas retenue. Pour la suite, "
        "contactez votre médecin. Si aggravation, appelez le 15.",
        "Bonjour, après avis médical, votre demande de consultation au centre n'a pas été "
        f"retenue. Pour la suite, contactez votre médecin. {_WORSE}",
        "Demande refusée : Vu au téléphone : pas de consultation.",
    ),
    Told(
        "referral.regulated",
        "hold: a regulator decides, and that decision is told",
        None,
        None,
        "En attente de la décision d'un médecin régulateur. Motif : Un médecin régulateur "
        "décide. Vous serez informé de sa décision.",
    ),
    Told(
        "referral.waitlisted",
        "no slot for a patient never booked: booked when a place frees up",
        "Covid-19 : pas encore de créneau libre près de chez vous. Vous recevrez un SMS dès "
        "qu'un RDV vous sera réservé. Si aggravation, appelez le 15.",
        "Bonjour, à la suite de l'avis de votre médecin, une consultation en centre vous est "
        "proposée, mais aucun créneau n'est libre pour l'instant près de chez vous. Vous êtes "
        "en liste d'attente : vous recevrez un nouveau message avec votre rendez-vous dès "
        f"qu'une place se libère. {_WORSE}",
        "Aucun créneau disponible : patient en liste d'attente. Un rendez-vous lui sera "
        "réservé dès qu'une place se libère près de chez lui, et vous en serez informé.",
    ),
    Told(
        "referral.waitlisted",
        "after a booking (told by the cancellation) or again (told once)",
        None,
        None,
        "Aucun créneau disponible : patient en liste d'attente. Un rendez-vous lui sera "
        "réservé dès qu'une place se libère près de chez lui, et vous en serez informé.",
    ),
    Told(
        "patient.escalated",
        "a centre hands the patient back to Centre 15 (the patient is with it)",
        None,
        None,
        "Le centre a réadressé le patient au Centre 15 (SpO2 89 %). Le Centre 15 en est "
        "informé et rappelle le patient.",
    ),
    Told(
        "consultation.no_show",
        "the patient did not come: nothing rebooks them",
        None,
        None,
        "Le patient ne s'est pas présenté au rendez-vous. Aucun autre rendez-vous ne lui est "
        "réservé : adressez-le à nouveau si besoin.",
    ),
    Told(
        "consultation.cancelled",
        "recorded on the centre's day list: the move (or the cancellation) that follows tells",
        None,
        None,
        "",
    ),
    Told(
        "consultation.completed",
        "seen",
        None,
        None,
        "Le patient a été vu en consultation.",
    ),
]


def _rendered(row: Told) -> tuple[PatientNotice | None, str]:
    """What the notifier's handlers write for the row's event and cause."""
    booked = {"start": START.isoformat(), "centre_name": POTERIE.centre, "test_eligible": True}
    key = (row.event, row.cause.split(":")[0].split(",")[0])
    moves = {
        "moved_by service": ("service", "centre suspendu : plus de médecin"),
        "moved_by patient": ("patient", "à la demande du patient (lien de l'avis de rendez-vous)"),
        "moved_by regulator": ("regulator", "priorité « dès que possible » décidée par DR-1"),
        "moved_by centre": ("centre", "médecin absent"),
    }
    if row.event == "slot.assigned":
        return notices.appointment(POTERIE, "gp", LINK), templates.referrer_outcome(
            "appointment", booked
        )
    if key[1] in moves:
        by, reason = moves[key[1]]
        detail = {**booked, "reason": reason, "by": by}
        notice = notices.moved(POTERIE, BEFORE, by, reason, LINK)
        return notice, templates.referrer_outcome("rescheduled", detail)
    if row.event == "appointment.cancelled":
        return _cancelled(row)
    if row.event == "referral.cancelled":
        return _withdrawn(row)
    if row.event == "referral.regulated":
        return _decided(row)
    if row.event == "consultation.cancelled":
        return None, ""  # the notifier's handler tells nobody (on_consultation_cancelled)
    return _reported(row)


def _cancelled(row: Told) -> tuple[PatientNotice | None, str]:
    if row.cause.startswith("replaced_by"):
        return None, ""  # the handler tells the losing centre only
    by = row.cause.split(":")[0].removeprefix("cancelled_by ")
    kind = "centre_15" if "Centre 15 withdrew" in row.cause else "gp"
    reason = {
        "patient": "annulé par le patient (lien de l'avis de rendez-vous)",
        "referrer": "case cancelled by the LRM (Hub Santé)"
        if kind == "centre_15"
        else "le patient va mieux",
        "service": "centre suspendu : plus de médecin",
        "regulator": "décision de régulation : suivi à domicile par le médecin traitant",
        "centre": "médecin absent",
    }[by]
    detail: dict[str, object] = {"reason": reason, "by": by}
    return notices.cancelled(START, by, reason, kind), templates.referrer_outcome(
        "cancelled", detail
    )


def _withdrawn(row: Told) -> tuple[PatientNotice | None, str]:
    """referral.cancelled: told by the notifier only when no appointment is cancelled
    with it, and to the patient only if they had heard of the referral."""
    if "with its appointment" in row.cause:
        return None, ""  # the appointment's cancellation tells it (its rows above)
    reason = "le patient va mieux"
    detail = {"reason": reason, "by": "referrer", "appointment_cancelled": False}
    told_before = "told before" in row.cause
    notice = notices.withdrawn("referrer", reason, "gp") if told_before else None
    return notice, templates.referrer_outcome("cancelled", detail)


def _decided(row: Told) -> tuple[PatientNotice | None, str]:
    decision = row.cause.split(":")[0].split(",")[0]
    kind = "centre_15" if "by Centre 15" in row.cause else "gp"
    lead, message = {
        "escalate": ("escalate", "Signes de gravité : SpO2 88 %."),
        "home_follow_up": (
            "home.mild",
            "Tableau bénin adressé par le Centre 15 : suivi à domicile par le médecin traitant.",
        ),
        "refuse": (
            "screening",
            "Demande de dépistage : les centres de consultation ne sont "
            "pas des centres de dépistage.",
        )
        if "screening" in row.cause
        else ("regulator", "Vu au téléphone : pas de consultation."),
        "hold": ("hold.no_vitals", "Un médecin régulateur décide."),
    }[decision]
    reasons = [(lead, message), _SPO2] if decision == "escalate" else [(lead, message)]
    detail: dict[str, object] = {"reason_details": [{"code": c, "message": m} for c, m in reasons]}
    status = {
        "escalate": "escalated",
        "home_follow_up": "home_follow_up",
        "refuse": "refused",
        "hold": "held_for_regulator",
    }[decision]
    notice = notices.decided(decision, lead, kind)
    return notice, templates.referrer_outcome(status, detail)


def _reported(row: Told) -> tuple[PatientNotice | None, str]:
    if row.event == "referral.waitlisted":
        never_booked = row.cause.startswith("no slot")
        detail: dict[str, object] = {"reason": "aucun créneau libre avant l'échéance"}
        notice = notices.waitlisted("gp") if never_booked else None
        return notice, templates.referrer_outcome("waitlisted", detail)
    reports: dict[str, tuple[str, dict[str, object]]] = {
        "patient.escalated": ("escalated_by_centre", {"reason": "SpO2 89 %", "centre_id": "c"}),
        "consultation.no_show": ("no_show", {"centre_id": "c"}),
        "consultation.completed": ("seen", {"centre_id": "c"}),
    }
    status, said = reports[row.event]
    return None, templates.referrer_outcome(status, said)


@pytest.mark.parametrize("row", TABLE, ids=lambda r: f"{r.event}: {r.cause[:40]}")
def test_each_case_tells_what_will_happen(row: Told) -> None:
    notice, referrer = _rendered(row)
    assert (notice.sms if notice else None) == row.patient_sms
    assert (notice.text if notice else None) == row.patient_email
    assert referrer == row.referrer


# A promise to be contacted, and the process that keeps it: Centre 15's call-back list
# for an escalated patient; the scheduler's booking (a new notice) for a waiting one.
_CALL = re.compile(r"rappel|recontact|appellera|vous serez contacté|on vous contactera", re.I)
_NEW_MESSAGE = re.compile(r"vous recevrez|vous serez informé|vous en serez informé", re.I)


@pytest.mark.parametrize("row", TABLE, ids=lambda r: f"{r.event}: {r.cause[:40]}")
def test_no_text_promises_what_no_process_does(row: Told) -> None:
    texts = [t for t in (row.patient_sms, row.patient_email, row.referrer) if t]
    for text in texts:
        for promise in _CALL.findall(text):
            assert (promise.lower() == "recontact" and "Personne ne vous" in text) or (
                "Centre 15" in text and row.cause.startswith(("escalate", "a centre hands"))
            ), (row.cause, text)
        if _NEW_MESSAGE.search(text):
            # Waiting: the booking is a notice; held: the decision is an outcome.
            assert row.event == "referral.waitlisted" or row.cause.startswith(
                ("cancelled_by service", "cancelled_by centre", "hold")
            ), (row.cause, text)


def test_the_table_covers_every_cause() -> None:
    causes = {(r.event, r.cause.split(":")[0]) for r in TABLE}
    for by in ("service", "patient", "regulator", "centre"):
        assert ("appointment.rescheduled", f"moved_by {by}") in causes
    assert ("consultation.cancelled", "recorded on the centre's day list") in causes
    for by in CANCELLERS:
        assert ("appointment.cancelled", f"cancelled_by {by}") in causes
    decided = {c.split(",")[0] for e, c in causes if e == "referral.regulated"}
    assert decided == {"escalate", "home_follow_up", "refuse", "hold"}
