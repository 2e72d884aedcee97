"""The console's web app: log-in, the ARS's territory, a centre's day, Centre 15's desk.

The console holds no state of its own. It reads the services' HTTP APIs with the
logged-in actor's bearer token (issued here, since the console holds the deployment's
secret), so each service still decides what the actor may see; the ARS's decisions are
events the console publishes on the broker, as the ``aiguillage ars`` commands do.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote
from zoneinfo import ZoneInfo

import httpx
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from aiguillage.console.auth import (
    ACTOR_ID,
    CONSOLE_ROLES,
    ROLE_LABELS,
    SESSION_COOKIE,
    SESSION_SECONDS,
    Actor,
    actor_from_cookie,
    check_password,
    session_cookie,
)
from aiguillage.console.live import EventHub
from aiguillage.console.svgmap import region_maps
from aiguillage.hours import parse_hours
from shared.auth import Role
from shared.events import (
    CentreActivated,
    CentreCapacityChanged,
    CentreKind,
    CentreSuspended,
    Decision,
    EventPayload,
    Priority,
)
from shared.geo import commune
from shared.publisher import EventPublisher
from shared.settings import Settings
from shared.topology import declare_topology

HERE = Path(__file__).parent
PARIS = ZoneInfo("Europe/Paris")

KIND_LABELS = {
    CentreKind.TEMPORARY_DEDICATED.value: "Centre dédié temporaire",
    CentreKind.HOSPITAL_ATTACHED.value: "Adossé à un hôpital",
    CentreKind.MSP.value: "Maison de santé (MSP)",
    CentreKind.CENTRE_DE_SANTE.value: "Centre de santé",
    CentreKind.GROUP_PRACTICE.value: "Cabinet de groupe",
}
STATUS_LABELS = {
    "active": "actif",
    "suspended": "suspendu",
    "closed": "fermé",
    "booked": "prévu",
    "fulfilled": "vu",
    "noshow": "absent",
    "escalated": "escaladé",
    "cancelled": "annulé",
    "rescheduled": "déplacé",
}
DECISION_LABELS = {
    Decision.ORIENT.value: "Orienter vers un centre",
    Decision.ESCALATE.value: "Adresser au SAMU / aux urgences",
    Decision.HOME_FOLLOW_UP.value: "Suivi à domicile (médecin traitant)",
    Decision.REFUSE.value: "Refuser",
    Decision.HOLD.value: "Garder en attente",
}
PRIORITY_LABELS = {
    Priority.STAT.value: "immédiate",
    Priority.ASAP.value: "dès que possible",
    Priority.URGENT.value: "urgente",
    Priority.ROUTINE.value: "ordinaire",
}
REFERRER_LABELS = {
    "gp": "médecin traitant",
    "centre_15": "Centre 15",
    "sos_medecins": "SOS Médecins",
    "emergency_department": "urgences",
}
OUTCOME_LABELS = {
    "appointment": "rendez-vous donné",
    "refused": "refusé",
    "escalated": "adressé au SAMU",
    "home_follow_up": "suivi à domicile",
    "held": "en attente d'un régulateur",
    "waitlisted": "en liste d'attente",
    "rescheduled": "déplacé",
    "cancelled": "annulé",
    "no_show": "absent",
}
ALERT_LABELS = {"saturation": "saturation", "waiting_list": "liste d'attente"}
HOME = {Role.ARS: "/territoire", Role.CENTRE: "/centre", Role.CENTRE_15: "/centre-15"}


class ServiceError(Exception):
    """A service refused or could not be reached; the message is shown to the actor."""


@dataclass
class Console:
    settings: Settings
    hub: EventHub
    http: httpx.AsyncClient | None = None
    publisher: EventPublisher | None = None

    def base_url(self, service: str) -> str:
        host = self.settings.http_host
        host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        return f"http://{host}:{self.settings.http_port(service)}"

    async def call(
        self, actor: Actor, method: str, service: str, path: str, body: Any = None, **params: Any
    ) -> Any:
        assert self.http is not None
        try:
            response = await self.http.request(
                method,
                self.base_url(service) + path,
                json=body,
                params={k: v for k, v in params.items() if v is not None},
                headers={"Authorization": f"Bearer {actor.token(self.settings.auth_secret)}"},
            )
        except httpx.HTTPError as exc:
            raise ServiceError(
                f"le service {service} ne répond pas ({exc.__class__.__name__})"
            ) from exc
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ServiceError(f"{service} a refusé ({response.status_code}) : {detail}")
        return response.json()

    async def publish(self, actor: Actor, payload: EventPayload, correlation_id: str) -> str:
        assert self.publisher is not None
        envelope = await self.publisher.publish(payload, correlation_id=correlation_id)
        return envelope.id


def local_time(value: str | None, fmt: str = "%H:%M") -> str:
    if not value:
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(PARIS).strftime(fmt)


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}".replace("%", " %")


def occupancy_class(value: float | None) -> str:
    if value is None:
        return "occ-none"
    if value < 0.5:
        return "occ-low"
    if value < 0.8:
        return "occ-mid"
    if value < 0.95:
        return "occ-high"
    return "occ-full"


def commune_name(insee: str) -> str:
    found = commune(insee)
    return found.name if found else insee


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    env = templates.env
    env.filters["heure"] = local_time
    env.filters["pourcent"] = percent
    env.filters["occ"] = occupancy_class
    env.filters["commune"] = commune_name
    env.globals.update(
        KIND_LABELS=KIND_LABELS,
        STATUS_LABELS=STATUS_LABELS,
        DECISION_LABELS=DECISION_LABELS,
        PRIORITY_LABELS=PRIORITY_LABELS,
        ALERT_LABELS=ALERT_LABELS,
        OUTCOME_LABELS=OUTCOME_LABELS,
        REFERRER_LABELS=REFERRER_LABELS,
        ROLE_LABELS={r.value: label for r, label in ROLE_LABELS.items()},
    )
    return templates


async def _form(request: Request) -> dict[str, str]:
    # URL-encoded forms only (no uploads): parsed here rather than pull in a multipart
    # parser.
    body = (await request.body()).decode()
    return {k: v[0].strip() for k, v in parse_qs(body, keep_blank_values=True).items()}


def _back(path: str, message: str, ok: bool = True) -> RedirectResponse:
    flag = "ok" if ok else "erreur"
    return RedirectResponse(f"{path}?{flag}={quote(message)}", status_code=303)


def create_app(settings: Settings, *, listen: bool = True) -> FastAPI:
    hub = EventHub(settings.broker_url, settings.namespace)
    console = Console(settings, hub)
    templates = _templates()
    secret = settings.auth_secret

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        console.http = httpx.AsyncClient(timeout=10.0)
        if listen:
            await declare_topology(settings.broker_url, settings.namespace)
            await hub.start()
            console.publisher = await EventPublisher(
                settings.broker_url, settings.namespace, "ars"
            ).__aenter__()
        try:
            yield
        finally:
            await console.http.aclose()
            if console.publisher is not None:
                await console.publisher.__aexit__(None, None, None)
            await hub.stop()

    app = FastAPI(title="Aiguillage — console", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.console = console
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    def actor_of(request: Request, role: Role | None = None) -> Actor:
        actor = actor_from_cookie(secret, request.cookies.get(SESSION_COOKIE))
        if actor is None:
            raise HTTPException(303, headers={"Location": "/connexion"})
        if role is not None and actor.role is not role:
            raise HTTPException(403, "cette page n'est pas celle de votre rôle")
        return actor

    def page(request: Request, name: str, actor: Actor | None, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(
            request,
            name,
            {
                "actor": actor,
                "ok": request.query_params.get("ok"),
                "erreur": request.query_params.get("erreur"),
                "today": datetime.now(PARIS).date().isoformat(),
                **context,
            },
        )

    @app.get("/sante", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/")
    async def home(request: Request) -> Response:
        actor = actor_from_cookie(secret, request.cookies.get(SESSION_COOKIE))
        return RedirectResponse(HOME[actor.role] if actor else "/connexion", status_code=303)

    @app.get("/connexion")
    async def login_page(request: Request) -> HTMLResponse:
        return page(request, "login.html", None, roles=CONSOLE_ROLES)

    @app.post("/connexion")
    async def login(request: Request) -> Response:
        form = await _form(request)
        try:
            role = Role(form.get("role", ""))
        except ValueError:
            role = None
        subject = form.get("identifiant", "")
        actor = (
            check_password(secret, role, subject, form.get("mot_de_passe", ""))
            if role is not None
            else None
        )
        if actor is None:
            return page(
                request,
                "login.html",
                None,
                roles=CONSOLE_ROLES,
                erreur="Identifiant ou mot de passe inconnu.",
                chosen_role=form.get("role"),
                subject=subject,
            )
        response = RedirectResponse(HOME[actor.role], status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            session_cookie(secret, actor),
            max_age=SESSION_SECONDS,
            httponly=True,
            samesite="lax",
        )
        return response

    @app.post("/deconnexion")
    async def logout() -> Response:
        response = RedirectResponse("/connexion", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    @app.get("/evenements")
    async def events(request: Request) -> StreamingResponse:
        actor = actor_of(request)
        return StreamingResponse(
            hub.stream(actor),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    # -- the ARS ---------------------------------------------------------------------

    async def territory_context(actor: Actor) -> dict[str, Any]:
        try:
            overview = await console.call(actor, "GET", "scheduler", "/territory")
            # Kept by the scheduler: a request sent while no console was open is there.
            asked = await console.call(actor, "GET", "scheduler", "/reinforcements?limit=50")
            deps = overview["departements"]
            details = await asyncio.gather(
                *(
                    console.call(actor, "GET", "scheduler", f"/territory/{d['departement']}")
                    for d in deps
                )
            )
        except ServiceError as exc:
            return {"service_error": str(exc), "departements": [], "centres": [], "maps": []}
        centres = [c for detail in details for c in detail["centres"]]
        return {
            "departements": deps,
            "centres": centres,
            "maps": region_maps(centres),
            "reinforcements": asked["reinforcements"],
            "updated": datetime.now(PARIS).strftime("%H:%M:%S"),
        }

    @app.get("/territoire")
    async def territory(request: Request) -> HTMLResponse:
        actor = actor_of(request, Role.ARS)
        return page(
            request,
            "territory.html",
            actor,
            kinds=KIND_LABELS,
            **await territory_context(actor),
        )

    @app.get("/territoire/fragment")
    async def territory_fragment(request: Request) -> HTMLResponse:
        actor = actor_of(request, Role.ARS)
        return page(request, "_territory.html", actor, **await territory_context(actor))

    async def ars_decision(
        request: Request, build: Callable[[dict[str, str]], EventPayload], done: str
    ) -> Response:
        actor = actor_of(request, Role.ARS)
        form = await _form(request)
        try:
            payload = build(form)
        except (ValidationError, ValueError) as exc:
            return _back("/territoire", f"Formulaire incomplet ou invalide : {_short(exc)}", False)
        centre_id = str(getattr(payload, "centre_id", ""))
        await console.publish(actor, payload, centre_id)
        return _back("/territoire", done.format(centre=centre_id))

    def _activation(form: dict[str, str]) -> EventPayload:
        if commune(form.get("commune", "")) is None:
            raise ValueError(f"aucune commune de code INSEE {form.get('commune')!r}")
        return CentreActivated(
            centre_id=form.get("centre_id", ""),
            name=form.get("nom", ""),
            kind=CentreKind(form.get("type", CentreKind.TEMPORARY_DEDICATED.value)),
            commune_insee=form["commune"],
            address=form.get("adresse") or None,
            opening_hours=parse_hours(form.get("horaires") or "all 08:00-20:00"),
            boxes=int(form.get("boxes") or 2),
            consultation_minutes=int(form.get("minutes") or 20),
            first_day=date.fromisoformat(form.get("premier_jour") or date.today().isoformat()),
        )

    def _capacity(form: dict[str, str]) -> EventPayload:
        return CentreCapacityChanged(
            centre_id=form.get("centre_id", ""),
            boxes=int(form["boxes"]) if form.get("boxes") else None,
            consultation_minutes=int(form["minutes"]) if form.get("minutes") else None,
            opening_hours=parse_hours(form["horaires"]) if form.get("horaires") else None,
            from_date=date.fromisoformat(form.get("a_partir_du") or date.today().isoformat()),
        )

    def _suspension(form: dict[str, str]) -> EventPayload:
        if not ACTOR_ID.match(form.get("centre_id", "")):
            raise ValueError("identifiant de centre invalide")
        return CentreSuspended(
            centre_id=form["centre_id"], reason=form.get("motif") or "suspendu par l'ARS"
        )

    @app.post("/territoire/activer")
    async def activate(request: Request) -> Response:
        return await ars_decision(request, _activation, "Activation du centre {centre} publiée.")

    @app.post("/territoire/capacite")
    async def capacity(request: Request) -> Response:
        return await ars_decision(request, _capacity, "Changement de capacité de {centre} publié.")

    @app.post("/territoire/suspendre")
    async def suspend(request: Request) -> Response:
        return await ars_decision(request, _suspension, "Suspension de {centre} publiée.")

    # -- a centre --------------------------------------------------------------------

    async def centre_context(actor: Actor, day: str | None) -> dict[str, Any]:
        try:
            listing = await console.call(
                actor, "GET", "notifier", f"/centres/{actor.subject}/appointments", day=day
            )
        except ServiceError as exc:
            return {"service_error": str(exc), "appointments": [], "day": day}
        return {
            "appointments": listing["appointments"],
            "day": listing["day"],
            "updated": datetime.now(PARIS).strftime("%H:%M:%S"),
        }

    @app.get("/centre")
    async def centre_page(request: Request, jour: str | None = None) -> HTMLResponse:
        actor = actor_of(request, Role.CENTRE)
        return page(request, "centre.html", actor, **await centre_context(actor, jour))

    @app.get("/centre/fragment")
    async def centre_fragment(request: Request, jour: str | None = None) -> HTMLResponse:
        actor = actor_of(request, Role.CENTRE)
        return page(request, "_appointments.html", actor, **await centre_context(actor, jour))

    async def centre_action(
        request: Request, action: Callable[[Actor, dict[str, str]], Awaitable[str]]
    ) -> Response:
        actor = actor_of(request, Role.CENTRE)
        form = await _form(request)
        back = "/centre" + (f"?jour={form['jour']}&" if form.get("jour") else "?")
        try:
            message, ok = await action(actor, form), True
        except (ServiceError, ValueError) as exc:
            message, ok = str(exc), False
        return RedirectResponse(
            f"{back}{'ok' if ok else 'erreur'}={quote(message)}", status_code=303
        )

    @app.post("/centre/rendez-vous/{appointment_id}/issue")
    async def outcome(request: Request, appointment_id: str) -> Response:
        async def report(actor: Actor, form: dict[str, str]) -> str:
            await console.call(
                actor,
                "POST",
                "notifier",
                f"/centres/{actor.subject}/appointments/{appointment_id}/outcome",
                {"outcome": form.get("issue"), "reason": form.get("motif", "")},
            )
            return "Issue de la consultation enregistrée."

        return await centre_action(request, report)

    @app.post("/centre/renforts")
    async def reinforcements(request: Request) -> Response:
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

        return await centre_action(request, ask)

    # -- Centre 15 -------------------------------------------------------------------

    async def desk_context(actor: Actor) -> dict[str, Any]:
        try:
            held = (await console.call(actor, "GET", "regulation", "/held"))["held"]
            # Kept by intake: escalated while no console was open, still listed.
            escalated = (await console.call(actor, "GET", "intake", "/escalations"))["escalations"]
            error = None
        except ServiceError as exc:
            held, escalated, error = [], [], str(exc)
        return {
            "held": held,
            "escalations": escalated,
            "service_error": error,
            "updated": datetime.now(PARIS).strftime("%H:%M:%S"),
        }

    @app.get("/centre-15")
    async def desk(request: Request) -> HTMLResponse:
        actor = actor_of(request, Role.CENTRE_15)
        return page(request, "centre15.html", actor, **await desk_context(actor))

    @app.get("/centre-15/fragment")
    async def desk_fragment(request: Request) -> HTMLResponse:
        actor = actor_of(request, Role.CENTRE_15)
        return page(request, "_centre15.html", actor, **await desk_context(actor))

    @app.post("/centre-15/dossiers/{referral_id}/decision")
    async def decide(request: Request, referral_id: str) -> Response:
        actor = actor_of(request, Role.CENTRE_15)
        form = await _form(request)
        body = {
            "decision": form.get("decision"),
            "priority": form.get("priorite") or None,
            "comment": form.get("commentaire", ""),
        }
        try:
            await console.call(
                actor, "POST", "regulation", f"/referrals/{referral_id}/decision", body
            )
        except ServiceError as exc:
            return _back("/centre-15", str(exc), False)
        return _back("/centre-15", f"Décision enregistrée pour le dossier {referral_id[:8]}.")

    return app


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])} : {e['msg']}" for e in exc.errors()[:3]
        )
    return str(exc)
