"""`aiguillage privacy`: a patient's rights over their data (issue 34).

``export`` gathers what every service holds on one person (intake: their identity,
their referrals and each status, who read their file; regulation: the clinical details
and each decision with its reasons; the scheduler: appointments and the waiting list;
the notifier: the contact it keeps and every notification sent) into one JSON file and
one page in French, for the patient or the data-protection officer. Intake finds the
person (by NIR, compared by its keyed hash, or by one referral); the other services
answer by the pseudonym downstream, each through its own package's function.

``restrict`` records the patient's restriction of processing in intake, whose relay
tells the notifier (``referral.restricted``): the patient and their referrer are told
nothing more of that referral.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import jinja2
import typer

import services.intake
import services.notifier
import services.regulation
import services.scheduler
from aiguillage.reach import database, reaching
from shared import labels
from shared.db import Database
from shared.events import utcnow
from shared.migrations import upgrade
from shared.paris import paris_fr
from shared.settings import ServiceName, Settings, get_settings

app = typer.Typer(
    help="A patient's rights over their data: all of it exported, its processing restricted.",
    no_args_is_help=True,
)

Part = Callable[[Database, list[str]], Awaitable[dict[str, Any]]]
PARTS: dict[ServiceName, Part] = {
    ServiceName.REGULATION: services.regulation.patient_part,
    ServiceName.SCHEDULER: services.scheduler.patient_part,
    ServiceName.NOTIFIER: services.notifier.patient_part,
}


async def _migrated(settings: Settings, service: ServiceName) -> Database:
    db = Database(settings.database_url(service))
    with reaching(database(settings, service)):
        await upgrade(db, f"services.{service.value}:migrations")
    return db


async def gather(
    settings: Settings, *, nir: str | None = None, referral_id: str | None = None
) -> dict[str, Any] | None:
    """Every service's part on the person; None when intake knows no such person."""
    intake = await _migrated(settings, ServiceName.INTAKE)
    try:
        vault = services.intake.Vault.of(settings)
        found = await services.intake.patient_record(
            intake, vault, nir=nir, referral_id=referral_id
        )
    finally:
        await intake.dispose()
    if found is None:
        return None
    document: dict[str, Any] = {
        "generated_at": utcnow().isoformat(),
        "patient_refs": found["patient_refs"],
        "intake": {"referrals": found["referrals"]},
    }
    for service, part in PARTS.items():
        db = await _migrated(settings, service)
        try:
            document[service.value] = await part(db, found["patient_refs"])
        finally:
            await db.dispose()
    return document


def _when(value: str | None) -> str:
    if not value:
        return "—"
    return paris_fr(datetime.fromisoformat(value))


_PAGE = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
_PAGE.filters["when"] = _when
_PAGE.filters["state"] = labels.referral_state
_PAGE.filters["appointment"] = labels.appointment_status
_PAGE.globals.update(
    decisions=labels.by_code(labels.DECISIONS),
    priorities=labels.by_code(labels.PRIORITIES),
    channels=labels.by_code(labels.CHANNELS),
    recipients=labels.by_code(labels.RECIPIENT_KINDS),
    sexes=labels.by_code(labels.SEXES),
)
TEMPLATE = _PAGE.from_string(
    """<!doctype html>
<html lang="fr">
<head>
<meta charset="utf-8">
<title>Vos données dans Aiguillage</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto;
  padding: 0 1rem; line-height: 1.5; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1.5rem; }
th, td { border: 1px solid #bbb; padding: .3rem .5rem; text-align: left;
  vertical-align: top; }
h2 { border-bottom: 2px solid #035; margin-top: 2.5rem; }
.vide { color: #555; font-style: italic; }
</style>
</head>
<body>
<h1>Vos données dans Aiguillage</h1>
<p>Document établi le {{ doc.generated_at | when }}, à la demande d'accès du patient
(RGPD, article 15). Il rassemble ce que chaque service d'Aiguillage conserve sur vous.
Le même contenu est joint au format JSON.</p>

{% for r in doc.intake.referrals %}
<h2>Adressage reçu le {{ r.received_at | when }}</h2>
<h3>Identité</h3>
{% if r.identity %}
<table>
<tr><th>Nom</th><td>{{ r.identity.last_name }}</td></tr>
<tr><th>Prénom</th><td>{{ r.identity.first_name }}</td></tr>
<tr><th>Date de naissance</th><td>{{ r.identity.birth_date }}</td></tr>
<tr><th>Sexe</th><td>{{ sexes.get(r.identity.sex, r.identity.sex) }}</td></tr>
<tr><th>NIR</th><td>{{ r.identity.nir or "—" }}</td></tr>
<tr><th>Téléphone</th><td>{{ r.identity.phone or "—" }}</td></tr>
<tr><th>Courriel</th><td>{{ r.identity.email or "—" }}</td></tr>
<tr><th>Adresse</th><td>{{ r.identity.address or "—" }}</td></tr>
</table>
{% else %}
<p class="vide">Votre identité a été effacée à la fin de sa durée de conservation.</p>
{% endif %}
<h3>État de la demande</h3>
<p>{{ r.status | state | capitalize }} (dernière mise à jour le {{ r.updated_at | when }}),
commune {{ r.commune_insee }}, département {{ r.departement }}.</p>
<table>
<tr><th>Date</th><th>Étape</th></tr>
{% for h in r.history %}<tr><td>{{ h.at | when }}</td><td>{{ h.status | state }}</td></tr>
{% endfor %}
</table>
<h3>Accès à votre dossier</h3>
{% if r.accesses %}
<table>
<tr><th>Date</th><th>Qui</th><th>Par</th><th>Motif</th></tr>
{% for a in r.accesses %}<tr>
  <td>{{ a.at | when }}</td>
  <td>{{ a.account or a.reader }}</td>
  <td>{{ a.page or a.route }}</td>
  <td>{{ a.reason or "—" }}</td></tr>
{% endfor %}
</table>
{% else %}<p class="vide">Aucun accès enregistré.</p>{% endif %}

<h3>Régulation médicale</h3>
{% for c in doc.regulation.cases if c.referral_id == r.referral_id %}
<p>Âge à la demande : {{ c.age }} ans.</p>
{% if c.clinical %}<p>Éléments cliniques transmis : <code>{{ c.clinical | tojson }}</code></p>

{% else %}<p class="vide">Les éléments cliniques ont été effacés à la fin de leur
durée de conservation.</p>{% endif %}
<table>
<tr><th>Date</th><th>Décision</th><th>Priorité</th><th>Motifs</th></tr>
{% for d in c.decisions %}<tr>
  <td>{{ d.decided_at | when }}</td>
  <td>{{ decisions.get(d.decision, d.decision) }}</td>
  <td>{{ priorities.get(d.priority, "—") if d.priority else "—" }}</td>
  <td>{{ d.reasons | join(" ; ") if d.reasons else "—" }}{% if d.comment %}
— {{ d.comment }}{% endif %}</td></tr>
{% endfor %}
</table>
{% else %}<p class="vide">Aucune régulation.</p>{% endfor %}

<h3>Rendez-vous</h3>
{% set booked = doc.scheduler.appointments
  | selectattr("referral_id", "equalto", r.referral_id) | list %}
{% if booked %}
<table>
<tr><th>Centre</th><th>Début</th><th>Statut</th></tr>
{% for a in booked %}<tr>
  <td>{{ a.centre or a.centre_id }}</td>
  <td>{{ a.start | when }}</td>
  <td>{{ a.status | appointment }}</td></tr>
{% endfor %}
</table>
{% else %}<p class="vide">Aucun rendez-vous.</p>{% endif %}

<h3>Messages envoyés</h3>
{# A notice withheld once the referral was restricted was never sent (the JSON has it). #}
{% set sent = doc.notifier.notifications
  | selectattr("referral_id", "equalto", r.referral_id)
  | rejectattr("status", "equalto", "withheld") | list %}
{% if sent %}
<table>
<tr><th>Date</th><th>Destinataire</th><th>Canal</th><th>Objet</th></tr>
{% for n in sent %}<tr>
  <td>{{ (n.sent_at or n.created_at) | when }}</td>
  <td>{{ recipients.get(n.recipient_kind, n.recipient_kind) }}</td>
  <td>{{ channels.get(n.channel, n.channel) }}</td>
  <td>{{ n.subject or "—" }}</td></tr>
{% endfor %}
</table>
{% else %}<p class="vide">Aucun message.</p>{% endif %}
{% endfor %}
</body>
</html>
"""
)


def render(document: dict[str, Any]) -> str:
    """The export as a page in French (every code in the labels' words)."""
    return TEMPLATE.render(doc=document)


@app.command()
def export(
    nir: Annotated[str | None, typer.Option(help="The patient's NIR.")] = None,
    referral: Annotated[str | None, typer.Option(help="One of the patient's referrals.")] = None,
    out: Annotated[Path, typer.Option(help="Folder of the JSON file and the page.")] = Path("."),
) -> None:
    """Everything every service holds on one patient: a JSON file and a page in French."""
    if (nir is None) == (referral is None):
        raise typer.BadParameter("--nir or --referral (one of them)")
    settings = get_settings()
    document = asyncio.run(gather(settings, nir=nir, referral_id=referral))
    if document is None:
        typer.echo("Aucun patient ne correspond.", err=True)
        raise typer.Exit(1)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"patient-{document['patient_refs'][0][:12]}"
    json_path, html_path = out / f"{stem}.json", out / f"{stem}.html"
    json_path.write_text(json.dumps(document, ensure_ascii=False, indent=2), encoding="utf-8")
    html_path.write_text(render(document), encoding="utf-8")
    typer.echo(f"{json_path}\n{html_path}")


async def _restrict(settings: Settings, referral_id: str, by: str) -> bool | None:
    intake = await _migrated(settings, ServiceName.INTAKE)
    try:
        return await services.intake.restrict_referral(intake, referral_id, by)
    finally:
        await intake.dispose()


@app.command()
def restrict(
    referral: Annotated[str, typer.Option(help="The referral whose processing stops.")],
    by: Annotated[
        str, typer.Option(help="Who records the patient's request (the DPO, say).")
    ] = "operator",
) -> None:
    """Restrict a referral's processing (GDPR article 18): its patient and referrer are
    told nothing more; what the law needs goes on, and it is purged at its term."""
    done = asyncio.run(_restrict(get_settings(), referral, by))
    if done is None:
        typer.echo(f"Aucun adressage « {referral} ».", err=True)
        raise typer.Exit(1)
    typer.echo(
        "Traitement limité : plus aucun message au patient ni à son médecin."
        if done
        else "Ce traitement était déjà limité."
    )
