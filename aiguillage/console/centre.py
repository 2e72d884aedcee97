"""A centre's day: its appointments, their outcomes (and corrections), its requests for
reinforcement to the ARS, all through the notifier's API (the centres' door)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from aiguillage.console.auth import Actor
from aiguillage.console.centre_day import with_offers
from aiguillage.console.common import (
    PARIS,
    Console,
    ConsoleDep,
    ServiceError,
    actor_of,
    back,
    form_of,
    page,
    record,
)
from aiguillage.console.export import csv_download
from shared.auth import Role
from shared.events import Priority, ReferrerKind
from shared.labels import (
    CENTRE_CANCEL_REASONS,
    CONSULTATION_OUTCOMES,
    appointment_status,
    label,
)

router = APIRouter()


async def centre_context(console: Console, actor: Actor, day: str | None) -> dict[str, Any]:
    try:
        listing = await console.call(
            actor, "GET", "notifier", f"/centres/{actor.subject}/appointments", day=day
        )
    except ServiceError as exc:
        return {"service_error": str(exc), "appointments": [], "day": day}
    # What may be recorded now, and when that changes (the page is read again then).
    appointments, next_change = with_offers(listing["appointments"], datetime.now(UTC))
    decided = await _regulations(console, actor, listing["day"])
    for appointment in appointments:
        appointment["regulation"] = decided.get(appointment["appointment_id"])
    return {
        "centre": listing.get("centre"),
        "appointments": appointments,
        "next_change": next_change,
        "issues": CONSULTATION_OUTCOMES,
        # Why the centre could not hold a consultation ("Annulé"): the short list.
        "cancel_reasons": CENTRE_CANCEL_REASONS,
        "day": listing["day"],
        "updated": datetime.now(PARIS).strftime("%H:%M:%S"),
    }


async def _regulations(console: Console, actor: Actor, day: str) -> dict[str, Any]:
    """What regulation decided for each appointment of the day (the scheduler keeps it),
    by appointment; none when the scheduler cannot say: the list is shown without."""
    try:
        found = await console.call(
            actor, "GET", "scheduler", f"/centres/{actor.subject}/regulations", day=day
        )
    except ServiceError:
        return {}
    return {r["appointment_id"]: r for r in found["regulations"]}


@router.get("/centre")
async def centre_page(
    request: Request, console: ConsoleDep, jour: str | None = None
) -> HTMLResponse:
    actor = await actor_of(request, Role.CENTRE)
    context = await centre_context(console, actor, jour)
    return page(
        request,
        "centre.html",
        actor,
        reinforcements=await _reinforcements(console, actor),
        **context,
    )


async def _reinforcements(console: Console, actor: Actor) -> list[dict[str, Any]]:
    """The centre's requests for reinforcement and where each stands, as the scheduler
    keeps them (the ARS's answers, issue 30); none when it cannot say."""
    try:
        found = await console.call(
            actor, "GET", "scheduler", f"/centres/{actor.subject}/reinforcements"
        )
    except ServiceError:
        return []
    return list(found["reinforcements"])


# A centre's day as a spreadsheet: its own patients (whom it receives, names included),
# in French words; codes a machine would read stay out of a page a person prints.
DAY_COLUMNS = (
    "Date",
    "Début",
    "Fin",
    "Box",
    "Patient",
    "Priorité",
    "Test à prescrire",
    "Adressé par",
    "État",
)


def _day_rows(context: dict[str, Any]) -> Iterator[list[Any]]:
    """The day's rows but those whose patient restricted the processing (issue 34): the
    centre still receives them (its page lists them), but no copy leaves the system."""
    for appointment in context["appointments"]:
        if appointment.get("restricted"):
            continue
        start = datetime.fromisoformat(appointment["start"]).astimezone(PARIS)
        end = datetime.fromisoformat(appointment["end"]).astimezone(PARIS)
        kind = appointment.get("referrer_kind")
        yield [
            start.date().isoformat(),
            start.strftime("%H:%M"),
            end.strftime("%H:%M"),
            appointment["box"],
            appointment.get("patient_name"),
            label(Priority(appointment["priority"])),
            "oui" if appointment.get("test_eligible") else "non",
            label(ReferrerKind(kind)) if kind else None,
            appointment_status(appointment["status"]),
        ]


@router.get("/centre/export.csv")
async def centre_export(request: Request, console: ConsoleDep, jour: str | None = None) -> Response:
    """The centre's day as CSV (``;``, UTF-8 with BOM), streamed: its own patients only,
    as its page lists them."""
    actor = await actor_of(request, Role.CENTRE)
    context = await centre_context(console, actor, jour)
    if "service_error" in context:
        return back("/centre", context["service_error"], False)
    name = f"centre-{actor.subject}-{context['day']}.csv"
    return csv_download(name, DAY_COLUMNS, _day_rows(context))


@router.get("/centre/fragment")
async def centre_fragment(
    request: Request, console: ConsoleDep, jour: str | None = None
) -> HTMLResponse:
    actor = await actor_of(request, Role.CENTRE)
    context = await centre_context(console, actor, jour)
    return page(request, "_appointments.html", actor, **context)


async def centre_action(
    request: Request,
    action: Callable[[Actor, dict[str, str]], Awaitable[str]],
    what: str,
    appointment_id: str | None = None,
) -> Response:
    actor = await actor_of(request, Role.CENTRE)
    form = await form_of(request)
    back = "/centre" + (f"?jour={form['jour']}&" if form.get("jour") else "?")
    try:
        message, ok = await action(actor, form), True
    except ServiceError as exc:
        # A refusal with a stable code (an outcome out of its time) is said in the
        # service's own French words, not as an HTTP error.
        message, ok = (exc.detail if exc.code else str(exc)), False
    except ValueError as exc:
        message, ok = str(exc), False
    if ok:
        detail = {k: v for k, v in form.items() if k != "csrf"}
        if appointment_id is not None:
            detail["appointment_id"] = appointment_id
        await record(request, what, json.dumps(detail), centre_id=actor.subject)
    return RedirectResponse(f"{back}{'ok' if ok else 'erreur'}={quote(message)}", status_code=303)


def _outcome_body(form: dict[str, str]) -> dict[str, str | None]:
    """What the notifier's door reads of the outcome's form: the reason chosen from the
    list for an "annulé" only (the other outcomes carry none)."""
    body: dict[str, str | None] = {"outcome": form.get("issue"), "reason": form.get("motif", "")}
    if form.get("issue") == "cancelled":
        body["reason_code"] = form.get("cause") or None
    return body


@router.post("/centre/rendez-vous/{appointment_id}/issue")
async def outcome(request: Request, appointment_id: str, console: ConsoleDep) -> Response:
    async def report(actor: Actor, form: dict[str, str]) -> str:
        await console.call(
            actor,
            "POST",
            "notifier",
            f"/centres/{actor.subject}/appointments/{appointment_id}/outcome",
            _outcome_body(form),
        )
        if form.get("issue") == "cancelled":
            return (
                "Consultation notée « annulé » : le patient reçoit aussitôt un autre "
                "rendez-vous, ou attend sur la liste d'attente s'il n'y en a aucun."
            )
        return "Issue de la consultation enregistrée."

    return await centre_action(request, report, "consultation.outcome", appointment_id)


@router.post("/centre/rendez-vous/{appointment_id}/correction")
async def correction(request: Request, appointment_id: str, console: ConsoleDep) -> Response:
    async def correct(actor: Actor, form: dict[str, str]) -> str:
        await console.call(
            actor,
            "POST",
            "notifier",
            f"/centres/{actor.subject}/appointments/{appointment_id}/correction",
            {"outcome": form.get("issue"), "reason": form.get("motif", "")},
        )
        return "Correction de l'issue envoyée."

    return await centre_action(request, correct, "consultation.correction", appointment_id)


@router.post("/centre/renforts")
async def reinforcements(request: Request, console: ConsoleDep) -> Response:
    async def ask(actor: Actor, form: dict[str, str]) -> str:
        await console.call(
            actor,
            "POST",
            "notifier",
            f"/centres/{actor.subject}/reinforcements",
            {
                "count": int(form.get("nombre") or 0),
                "profession": form.get("profession", ""),
                "from_date": form.get("a_partir_du") or date.today().isoformat(),
                "note": form.get("note", ""),
            },
        )
        return "Demande de renfort envoyée à l'ARS."

    return await centre_action(request, ask, "reinforcement.requested")
