"""What the patient is told, case by case, in French: the whole notice for the e-mail
(and the demos' record), its essentials for the SMS.

Each notice says what will happen next, and only what a process of ours, or a person
it names, will really do:

- a new message is promised only where one will come: a waitlisted patient is booked
  by the scheduler as soon as a place frees up near them, and the booking is a new
  notice (``slot.assigned``); nothing else of ours contacts a patient;
- Centre 15 "will call" only an escalated patient: the notifier gives it their contact
  and its page lists them to call back (``GET /escalations``);
- a withdrawn referral (by the patient, or by whoever referred them) is final: nobody
  books or calls, so the notice says whom to turn to;
- every notice ends with what to do if the patient gets worse: call 15.

An SMS fits ``sms.MAX_SEGMENTS`` segments of the GSM alphabet (services/notifier/domain/sms.py):
the centre, the day and time, and the patient's link, behind which the rest is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.notifier.domain import sms
from services.notifier.domain.templates import local_time, where_at
from shared.geo import commune
from shared.paris import LABEL_FR, in_paris

SUBJECT = "Votre rendez-vous de consultation Covid-19"
SUBJECT_REQUEST = "Votre demande de consultation Covid-19"

WORSE = "En cas d'aggravation (difficulté à respirer, malaise), appelez le 15."
SMS_WORSE = "Si aggravation, appelez le 15."

# Who referred the patient, as the notice names them ("à la suite de l'avis ...").
REFERRED_BY_FR = {
    "centre_15": "du Centre 15 (SAMU)",
    "sos_medecins": "de SOS Médecins",
    "emergency_department": "du service des urgences",
    "gp": "de votre médecin",
}
# Who withdrew a referral, as the subject of a sentence.
WITHDRAWN_BY_FR = {
    "centre_15": "le Centre 15 (SAMU)",
    "sos_medecins": "SOS Médecins",
    "emergency_department": "le service des urgences",
    "gp": "votre médecin",
}
_DAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")


@dataclass(frozen=True)
class PatientNotice:
    template: str  # the notification's template: patient.<case>
    subject: str
    text: str  # the e-mail's, and the record's: the whole notice
    sms: str  # the essentials, at most sms.MAX_SEGMENTS segments

    def body(self, channel: str) -> str:
        return self.sms if channel == "sms" else self.text


@dataclass(frozen=True)
class Visit:
    """An appointment as the patient is told of it."""

    start: datetime
    centre: str
    address: str | None
    insee: str


def _after_advice(referrer_kind: str | None) -> str:
    by = REFERRED_BY_FR.get(referrer_kind or "")
    # The referrer may not be known yet (its patient.contact on another queue): a
    # notice that names nobody rather than the wrong one.
    return f"à la suite de l'avis {by}" if by else "à la suite d'un avis médical"


def sms_when(start: datetime) -> str:
    """``mardi 24/03 à 16h40 (heure de Paris)``: the day a patient reads, in few characters."""
    local = in_paris(start)
    return f"{_DAYS[local.weekday()]} {local:%d/%m} à {local:%Hh%M} ({LABEL_FR})"


def link_line(url: str | None) -> str:
    """The e-mail's last sentence: the patient's own link (shared/patient_link.py), to
    see the appointment, cancel it or ask for another slot, until it is over."""
    if not url:
        return ""
    return (
        f" Pour voir votre rendez-vous, l'annuler ou demander un autre créneau : {url} "
        "(lien personnel, valable jusqu'à la fin du rendez-vous)."
    )


def _places(visit: Visit) -> list[str]:
    """Where to go, for an SMS, the fullest first: centre, address, town; centre and
    town; the centre alone. The town is left out where the name already says it."""
    town = commune(visit.insee)
    named = f"{visit.centre} {visit.address or ''}".casefold()
    town_name = town.name if town and town.name.casefold() not in named else None
    full = [visit.centre, visit.address, town_name]
    choices = [", ".join(p for p in full if p), ", ".join(p for p in full[::2] if p)]
    return list(dict.fromkeys([*choices, visit.centre]))


def _sms_visit(lead: str, visit: Visit, link: str | None) -> str:
    """``<lead> <day and time>, <where>. [Si aggravation...] Voir, annuler, changer :
    <link>``, the fullest that fits: the address goes first, then the line on getting
    worse, then the centre's name is cut (the link's page gives it whole)."""
    tail = f" Voir, annuler, changer : {link}" if link else ""

    def text(where: str, worse: bool) -> str:
        end = "" if where.endswith("...") else "."
        return (
            f"{lead} {sms_when(visit.start)}, {where}{end}{f' {SMS_WORSE}' if worse else ''}{tail}"
        )

    def cut(n: int) -> str:
        return text(visit.centre[:n].rstrip(" ,-'") + "...", False)

    places = _places(visit)
    return sms.fit([text(p, True) for p in places] + [text(p, False) for p in places], cut)


# -- appointments ----------------------------------------------------------------


def appointment(visit: Visit, referrer_kind: str | None, link: str | None) -> PatientNotice:
    text = (
        f"Bonjour, {_after_advice(referrer_kind)}, un rendez-vous de consultation vous est "
        f"réservé le {local_time(visit.start)} {_where(visit)}. Présentez-vous à l'heure, "
        f"muni d'un masque si vous en avez un. {WORSE}{link_line(link)}"
    )
    short = _sms_visit("RDV Covid-19", visit, link)
    return PatientNotice("patient.new_patient", SUBJECT, text, short)


def _where(visit: Visit) -> str:
    return where_at(visit.centre, visit.address, visit.insee)


# Why an appointment moved, by who moved it (``AppointmentRescheduled.moved_by``):
# the e-mail's opening, the SMS's lead.
_MOVED = {
    # A centre suspended or closed by the ARS: the scheduler found another slot.
    "service": (
        "le centre où vous aviez rendez-vous le {previous} ne peut plus vous recevoir "
        "({reason}). Votre rendez-vous est déplacé",
        "RDV Covid-19 déplacé (centre fermé) :",
    ),
    # The centre could not hold the consultation (a doctor missing, a box closed): the
    # scheduler booked the patient again at once; the link changes the new slot.
    "centre": (
        "le centre n'a pas pu assurer votre consultation du {previous} ({reason}). Un "
        "nouveau rendez-vous vous est réservé",
        "RDV Covid-19 annulé par le centre, nouveau RDV :",
    ),
    # The patient asked for another slot from their link.
    "patient": (
        "comme vous l'avez demandé, votre rendez-vous du {previous} est déplacé",
        "RDV Covid-19 changé comme demandé :",
    ),
    # A regulator (or the protocol) raised the priority: an earlier slot.
    "regulator": (
        "un médecin a revu la priorité de votre demande : votre rendez-vous du {previous} "
        "est avancé",
        "RDV Covid-19 avancé :",
    ),
}
_MOVED_UNSAID = (
    "votre rendez-vous du {previous} est déplacé",
    "RDV Covid-19 déplacé :",
)


def moved(
    visit: Visit, previous: datetime, moved_by: str | None, reason: str, link: str | None
) -> PatientNotice:
    opening, lead = _MOVED.get(moved_by or "", _MOVED_UNSAID)
    said = opening.format(previous=local_time(previous), reason=reason.rstrip("."))
    text = (
        f"Bonjour, {said} : le {local_time(visit.start)} {_where(visit)}. {WORSE}{link_line(link)}"
    )
    short = _sms_visit(lead, visit, link)
    return PatientNotice("patient.rescheduled", SUBJECT, text, short)


# -- cancellations ---------------------------------------------------------------


def cancelled(
    start: datetime, cancelled_by: str, reason: str, referrer_kind: str | None
) -> PatientNotice:
    """An appointment cancelled and not replaced, by ``cancelled_by``
    (``AppointmentCancelled``): what comes next depends on who."""
    when, day = local_time(start), sms_when(start)
    if cancelled_by == "referrer":
        return _withdrawn(when, day, referrer_kind)
    said = {
        # The patient, from their link: the referral is withdrawn, nobody calls.
        "patient": (
            "est annulé, comme vous l'avez demandé. Personne ne vous recontactera à ce sujet "
            ": si vous avez encore besoin d'un avis médical, contactez votre médecin.",
            "annulé comme demandé. Besoin d'un avis ? Contactez votre médecin.",
        ),
        # A centre suspended or closed with no other slot in reach: the scheduler puts
        # the patient on the waiting list, and books them when a place frees up.
        "service": (
            f"est annulé : le centre ne peut plus vous recevoir (motif : {reason.rstrip('.')})"
            ", et aucun autre créneau n'est libre pour l'instant près de chez vous. Vous êtes "
            "en liste d'attente : vous recevrez un nouveau message dès qu'un rendez-vous vous "
            "sera réservé.",
            "annulé : le centre ne peut plus vous recevoir. Vous recevrez un SMS dès qu'un "
            "nouveau RDV vous sera réservé.",
        ),
        # The centre could not hold the consultation, and no other slot is free in reach
        # (otherwise the patient is moved): waitlisted, booked when a place frees up.
        "centre": (
            f"est annulé par le centre (motif : {reason.rstrip('.')}), et aucun autre "
            "créneau n'est libre pour l'instant près de chez vous. Vous êtes en liste "
            "d'attente : vous recevrez un nouveau message dès qu'un rendez-vous vous sera "
            "réservé.",
            "annulé par le centre. Vous recevrez un SMS dès qu'un nouveau RDV vous sera réservé.",
        ),
        # A regulator's new decision (its own notice follows) or Centre 15's withdrawal:
        # no promise either way.
        "regulator": (
            f"est annulé : un médecin régulateur a revu votre demande ({reason.rstrip('.')}).",
            "annulé : un médecin régulateur a revu votre demande.",
        ),
    }.get(
        cancelled_by,
        (
            f"est annulé par le centre (motif : {reason.rstrip('.')}). Pour la suite, "
            "contactez votre médecin.",
            "annulé par le centre. Pour la suite, contactez votre médecin.",
        ),
    )
    text = f"Bonjour, votre rendez-vous du {when} {said[0]} {WORSE}"
    short = sms.fit([f"RDV Covid-19 du {day} {said[1]} {SMS_WORSE}"])
    return PatientNotice("patient.cancelled", SUBJECT, text, short)


def _withdrawer(referrer_kind: str | None) -> str:
    """Who referred the patient, as the subject of "a retiré sa demande"."""
    return WITHDRAWN_BY_FR.get(referrer_kind or "", "le médecin qui vous a adressé")


def _withdrawn(when: str, day: str, referrer_kind: str | None) -> PatientNotice:
    """Withdrawn by whoever referred the patient: final, nobody books or calls."""
    who = _withdrawer(referrer_kind)
    text = (
        f"Bonjour, votre rendez-vous du {when} est annulé : {who} a retiré sa demande de "
        "consultation. Aucun autre rendez-vous ne vous sera proposé ; pour toute question, "
        f"contactez {who.removesuffix(' (SAMU)')}. {WORSE}"
    )
    short = sms.fit(
        [
            f"RDV Covid-19 du {day} annulé : {who} a retiré sa demande. Aucun autre RDV ne "
            f"sera proposé. {SMS_WORSE}"
        ]
    )
    return PatientNotice("patient.cancelled", SUBJECT, text, short)


def withdrawn(cancelled_by: str, reason: str, referrer_kind: str | None) -> PatientNotice:
    """A referral withdrawn before any appointment (``referral.cancelled``: received,
    waitlisted, held), told to a patient who had heard of it: final, nobody books or
    calls, so whom to turn to."""
    if cancelled_by == "referrer":
        who = _withdrawer(referrer_kind)
        text = (
            f"Bonjour, {who} a retiré sa demande de consultation pour vous. Aucun rendez-vous "
            f"ne vous sera proposé ; pour toute question, contactez {who.removesuffix(' (SAMU)')}."
        )
        short = f"Covid-19 : {who} a retiré sa demande de consultation. Aucun RDV ne sera proposé."
    elif cancelled_by == "patient":
        text = (
            "Bonjour, votre demande de consultation est annulée, comme vous l'avez demandé. "
            "Personne ne vous recontactera à ce sujet : si vous avez encore besoin d'un avis "
            "médical, contactez votre médecin."
        )
        short = (
            "Covid-19 : demande annulée comme demandé. Besoin d'un avis ? Contactez votre médecin."
        )
    else:
        text = (
            f"Bonjour, votre demande de consultation est annulée (motif : "
            f"{reason.rstrip('.')}). Pour la suite, contactez votre médecin."
        )
        short = "Covid-19 : votre demande de consultation est annulée. Contactez votre médecin."
    return PatientNotice(
        "patient.withdrawn", SUBJECT_REQUEST, f"{text} {WORSE}", sms.fit([f"{short} {SMS_WORSE}"])
    )


# -- decisions without an appointment ------------------------------------------------

# The lead reasons of a refusal that say why a centre is not for the patient.
_NOT_FOR_CENTRES = ("screening", "asymptomatic")


def decided(
    decision: str, lead_code: str | None, referrer_kind: str | None
) -> PatientNotice | None:
    """A regulation decision the patient hears of (``referral.regulated``); None for a
    hold (a regulator decides soon, and that decision is told) and an orientation (told
    with its appointment, or its waiting list)."""
    if decision == "escalate":
        # Centre 15 hears of it with the patient's contact, and lists them to call back.
        text = (
            "Bonjour, votre état demande un avis médical urgent, qu'un centre de "
            "consultation ne peut pas donner : votre demande est transmise au SAMU-Centre "
            "15, qui va vous rappeler. Si votre état s'aggrave d'ici là (difficulté à "
            "respirer, malaise), n'attendez pas : appelez le 15."
        )
        short = (
            "Covid-19 : votre demande est transmise au SAMU-Centre 15, qui va vous "
            "rappeler. Si votre état s'aggrave d'ici là, appelez le 15."
        )
    elif decision == "home_follow_up":
        text, short = _home(referrer_kind)
    elif decision == "refuse":
        text, short = _refused(lead_code)
    else:
        return None
    return PatientNotice(f"patient.{_TEMPLATES[decision]}", SUBJECT_REQUEST, text, sms.fit([short]))


_TEMPLATES = {"escalate": "escalated", "home_follow_up": "home_follow_up", "refuse": "refused"}


def _home(referrer_kind: str | None) -> tuple[str, str]:
    no_centre = "une consultation au centre n'est pas nécessaire"
    if referrer_kind == "gp":  # the doctor who referred them follows them up
        return (
            f"Bonjour, après avis médical, {no_centre} : votre médecin traitant assure le "
            f"suivi à domicile. {WORSE}",
            f"Covid-19 : pas de consultation en centre. Votre médecin traitant assure le "
            f"suivi. {SMS_WORSE}",
        )
    # Centre 15, SOS Médecins or an emergency department referred them: nobody of ours
    # tells the GP, so the patient is asked to.
    return (
        f"Bonjour, après avis médical, {no_centre} : le suivi se fait à domicile avec "
        f"votre médecin traitant ; prenez contact avec lui. {WORSE}",
        "Covid-19 : pas de consultation en centre. Le suivi se fait avec votre médecin "
        f"traitant : contactez-le. {SMS_WORSE}",
    )


def _refused(lead_code: str | None) -> tuple[str, str]:
    if lead_code in _NOT_FOR_CENTRES:
        return (
            "Bonjour, votre demande de consultation n'a pas été retenue : les centres de "
            "consultation Covid-19 reçoivent les personnes qui ont des symptômes, et ne "
            f"font pas de dépistage. Si des symptômes apparaissent, contactez votre médecin. "
            f"{WORSE}",
            "Covid-19 : pas de consultation en centre, ces centres ne font pas de "
            "dépistage. Si des symptômes apparaissent, contactez votre médecin.",
        )
    return (
        "Bonjour, après avis médical, votre demande de consultation au centre n'a pas été "
        f"retenue. Pour la suite, contactez votre médecin. {WORSE}",
        "Covid-19 : votre demande de consultation en centre n'est pas retenue. Pour la "
        f"suite, contactez votre médecin. {SMS_WORSE}",
    )


def waitlisted(referrer_kind: str | None) -> PatientNotice:
    """Oriented, no slot in reach before the deadline: the scheduler books the patient
    as soon as a place frees up near them (activation, more boxes, a cancellation)."""
    text = (
        f"Bonjour, {_after_advice(referrer_kind)}, une consultation en centre vous est "
        "proposée, mais aucun créneau n'est libre pour l'instant près de chez vous. Vous "
        "êtes en liste d'attente : vous recevrez un nouveau message avec votre rendez-vous "
        f"dès qu'une place se libère. {WORSE}"
    )
    short = (
        "Covid-19 : pas encore de créneau libre près de chez vous. Vous recevrez un SMS dès "
        f"qu'un RDV vous sera réservé. {SMS_WORSE}"
    )
    return PatientNotice("patient.waitlisted", SUBJECT_REQUEST, text, sms.fit([short]))
