"""The patient's page, reached by the link of the notice: no log-in, the link is the key.

The console checks the link (a forged or expired one never reaches a service), but
the services check it again themselves before they act or show anything: the
scheduler shows the appointment, offers other slots and books the one confirmed,
intake cancels the referral.

Another slot is offered, not imposed (issue 27): *Choisir un autre créneau* shows up
to three slots the scheduler's ranking gives the patient, and only the one they
confirm is booked; until then their appointment stands. A slot taken meanwhile is
said so, with the slots free now. Past three moves by the link (issue 28) the page
says to call the centre.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from aiguillage.console.common import Console, ConsoleDep, page
from aiguillage.console.notice import WHAT_TO_BRING, day_and_time
from aiguillage.console.svgmap import MARGIN
from shared.geo import commune as find_commune
from shared.geo import communes
from shared.patient_link import HEADER, LinkRefused, issue_link, verify_link

# The option a form posts: "<centre id>|<start, ISO 8601>" (a centre id has no "|").
SEPARATOR = "|"
CHOOSE_FR = "Choisissez l'un des créneaux proposés, puis confirmez."
MAP_SIZE = 320.0

router = APIRouter()


def where(centre: dict[str, Any]) -> str:
    """``12 rue X, Rennes``: the address and the commune, as far as they are known."""
    town = centre.get("commune") or ""
    if not town and centre.get("commune_insee"):
        found = find_commune(centre["commune_insee"])
        town = found.name if found else ""
    return ", ".join(part for part in (centre.get("address"), town) if part)


def kilometres(value: float) -> str:
    """``3,2 km``: French decimals."""
    return f"{value:.1f}".replace(".", ",") + " km"


def option_view(option: dict[str, Any]) -> dict[str, Any]:
    """One offer as the page shows it (Paris time, the French way)."""
    centre = option["centre"]
    return {
        "value": f"{option['centre_id']}{SEPARATOR}{option['start']}",
        "when": day_and_time(option["start"]),
        "centre": centre.get("name") or option["centre_id"],
        "where": where(centre),
        "distance": kilometres(float(option["distance_km"])),
    }


def parse_choice(body: bytes) -> dict[str, str] | None:
    """The slot the form confirms, as the scheduler takes it; None when none is."""
    raw = parse_qs(body.decode(errors="replace")).get("creneau", [""])[0]
    centre_id, separator, start = raw.rpartition(SEPARATOR)
    if not separator or not centre_id or not start:
        return None
    return {"centre_id": centre_id, "start": start}


def patient_map(lat: float, lon: float) -> dict[str, Any]:
    """A small SVG map around the centre: the communes near it as dots, the centre as
    a marker (no tiles, nothing from the internet, as aiguillage/console/svgmap.py)."""
    span = 0.1  # degrees of latitude each side: about 11 km
    k = max(0.2, math.cos(math.radians(lat)))
    scale = (MAP_SIZE - 2 * MARGIN) / (2 * span)
    dots = []
    for town in communes():
        if abs(town.lat - lat) < span and abs(town.lon - lon) * k < span:
            dots.append(
                {
                    "x": round(MAP_SIZE / 2 + (town.lon - lon) * k * scale, 1),
                    "y": round(MAP_SIZE / 2 - (town.lat - lat) * scale, 1),
                    "name": town.name,
                }
            )
    return {
        "size": MAP_SIZE,
        "dots": dots[:400],
        "x": MAP_SIZE / 2,
        "y": MAP_SIZE / 2,
        "lat": f"{lat:.5f}".replace(".", ","),
        "lon": f"{lon:.5f}".replace(".", ","),
    }


def patient_page(
    request: Request, status: int, template: str = "patient.html", **context: Any
) -> HTMLResponse:
    response = page(request, template, None, what_to_bring=WHAT_TO_BRING, **context)
    response.status_code = status
    # The page holds the patient's appointment: no cache keeps it.
    response.headers["Cache-Control"] = "no-store"
    return response


def refused_link(request: Request, refused: LinkRefused) -> HTMLResponse:
    if refused.expired:
        return patient_page(
            request,
            410,
            "patient_refus.html",
            title="Lien expiré",
            message="Ce lien a expiré : le rendez-vous est passé. En cas de besoin, "
            "contactez votre médecin ; en cas d'aggravation, appelez le 15.",
        )
    return patient_page(
        request,
        403,
        "patient_refus.html",
        title="Lien non valide",
        message="Ce lien n'est pas valide. Vérifiez qu'il est recopié en entier "
        "depuis votre SMS, votre courriel ou votre avis imprimé.",
    )


def service_refusal(request: Request, status: int, data: dict[str, Any]) -> HTMLResponse:
    reasons = data.get("reasons") or []
    message = reasons[0].get("message") if reasons else None
    titles = {403: "Lien non valide", 410: "Rendez-vous plus d'actualité"}
    return patient_page(
        request,
        status if status in (403, 404, 409, 410) else 502,
        "patient_refus.html",
        title=titles.get(status, "Demande impossible"),
        message=message or "Le service ne peut pas répondre pour l'instant : réessayez.",
    )


async def call(
    request: Request,
    console: Console,
    token: str,
    method: str,
    service: str,
    path: str,
    body: dict[str, str] | None = None,
) -> httpx.Response | HTMLResponse:
    """The service's answer, or the page to show when the link or the service
    fails; the token in a header, not the URL: no service's access log writes it."""
    try:
        verify_link(console.settings.patient_link_key, token)
        assert console.http is not None
        return await console.http.request(
            method, console.base_url(service) + path, headers={HEADER: token}, json=body
        )
    except LinkRefused as refused:
        return refused_link(request, refused)
    except httpx.HTTPError:
        return service_refusal(request, 502, {})


def appointment_context(appointment: dict[str, Any]) -> dict[str, Any]:
    centre = appointment["centre"]
    return {
        "appointment": appointment,
        "centre": centre,
        "where": where(centre),
        "when": day_and_time(appointment["start"]),
        "moves": appointment.get("moves") or {},
        "moved": appointment.get("moved"),
    }


@router.get("/patient/{token}")
async def patient_appointment(request: Request, token: str, console: ConsoleDep) -> HTMLResponse:
    answer = await call(request, console, token, "GET", "scheduler", "/patient/appointment")
    if isinstance(answer, HTMLResponse):
        return answer
    if answer.status_code != 200:
        return service_refusal(request, answer.status_code, answer.json())
    appointment = answer.json()
    centre = appointment["centre"]
    return patient_page(
        request,
        200,
        map=patient_map(centre["lat"], centre["lon"]) if centre.get("lat") else None,
        token=token,
        **appointment_context(appointment),
    )


def options_page(
    request: Request,
    token: str,
    status: int,
    appointment: dict[str, Any],
    options: list[dict[str, Any]],
    **extra: Any,
) -> HTMLResponse:
    return patient_page(
        request,
        status,
        "patient_creneaux.html",
        token=token,
        options=[option_view(o) for o in options],
        **appointment_context(appointment),
        **extra,
    )


async def current(request: Request, console: Console, token: str) -> dict[str, Any] | HTMLResponse:
    answer = await call(request, console, token, "GET", "scheduler", "/patient/appointment")
    if isinstance(answer, HTMLResponse):
        return answer
    if answer.status_code != 200:
        return service_refusal(request, answer.status_code, answer.json())
    found: dict[str, Any] = answer.json()
    return found


async def offers_page(request: Request, console: Console, token: str, **extra: Any) -> HTMLResponse:
    """The offers, read afresh; or, past three moves, whom to call."""
    path = "/patient/appointment/options"
    answer = await call(request, console, token, "GET", "scheduler", path)
    if isinstance(answer, HTMLResponse):
        return answer
    data = answer.json()
    if answer.status_code == 409 and data.get("error_code") == "too_many_moves":
        appointment = await current(request, console, token)
        if isinstance(appointment, HTMLResponse):
            return appointment
        return options_page(request, token, 409, appointment, [], too_many=True)
    if answer.status_code != 200:
        return service_refusal(request, answer.status_code, data)
    status = extra.pop("status", 200)
    appointment = data["appointment"] | {"moves": data["moves"], "moved": data["moved"]}
    return options_page(request, token, status, appointment, data["options"], **extra)


@router.get("/patient/{token}/autre-creneau")
async def patient_options(request: Request, token: str, console: ConsoleDep) -> HTMLResponse:
    return await offers_page(request, console, token)


# No CSRF token on the patient's forms: there is no session to ride, and a forger
# who could post here would need the link itself, which is the whole credential.
@router.post("/patient/{token}/autre-creneau")
async def patient_move(request: Request, token: str, console: ConsoleDep) -> Response:
    choice = parse_choice(await request.body())
    if choice is None:
        return await offers_page(request, console, token, status=422, error=CHOOSE_FR)
    path = "/patient/appointment/move"
    answer = await call(request, console, token, "POST", "scheduler", path, choice)
    if isinstance(answer, HTMLResponse):
        return answer
    data = answer.json()
    if answer.status_code == 200:
        # The new appointment's own link (the notice that follows carries the same):
        # the old one stops working with the old appointment.
        fresh = issue_link(
            console.settings.patient_link_key,
            data["appointment_id"],
            data["referral_id"],
            datetime.fromisoformat(data["end"]),
        )
        return RedirectResponse(f"/patient/{fresh}?deplace=1", status_code=303)
    code = data.get("error_code")
    if answer.status_code == 409 and code == "too_many_moves":
        return await offers_page(request, console, token)
    if answer.status_code == 409 and code in ("slot_taken", "same_slot"):
        error = data["reasons"][0]["message"]
        return await offers_page(request, console, token, status=409, error=error)
    if answer.status_code == 422:
        return await offers_page(request, console, token, status=422, error=CHOOSE_FR)
    return service_refusal(request, answer.status_code, data)


@router.post("/patient/{token}/annuler")
async def patient_cancel(request: Request, token: str, console: ConsoleDep) -> Response:
    answer = await call(request, console, token, "POST", "intake", "/patient/cancellation")
    if isinstance(answer, HTMLResponse):
        return answer
    if answer.status_code != 200:
        return service_refusal(request, answer.status_code, answer.json())
    return patient_page(
        request,
        200,
        "patient_refus.html",
        title="Rendez-vous annulé",
        message="Votre rendez-vous est annulé ; le centre est prévenu et la place est "
        "rendue à un autre patient. Si vous avez encore besoin d'une consultation, "
        "contactez votre médecin. En cas d'aggravation, appelez le 15.",
        done=True,
    )
