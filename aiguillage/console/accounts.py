"""A person's session: log-in, log-out, the home page of their role, the live stream.

The accounts themselves (argon2id passwords, server-side sessions, the log-in gates,
the audit trail) are aiguillage/console/people.py; these are their pages.
"""

from __future__ import annotations

import hmac
import math
import secrets
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from aiguillage.console.auth import LOGIN_CSRF_COOKIE, SESSION_COOKIE
from aiguillage.console.common import (
    AccountsDep,
    ConsoleDep,
    ProxiesDep,
    Refused,
    actor_of,
    form_of,
    page,
)
from aiguillage.console.people import ABSOLUTE, AccountStore, Throttled
from shared.auth import Role

HOME = {
    Role.ARS: "/territoire",
    Role.CENTRE: "/centre",
    Role.CENTRE_15: "/centre-15",
    Role.REFERRER: "/adresser",
    Role.DPO: "/protection-des-donnees",
}
# The live stream's last message when the session ends: the page says so (console.js)
# rather than try to reconnect.
EXPIRED = "event: expired\ndata: {}\n\n"

router = APIRouter()


@router.get("/sante", include_in_schema=False)
async def health() -> dict[str, str]:
    return {"status": "ok"}


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    secure = request.app.state.console.settings.console_secure_cookies
    response.set_cookie(
        name, value, max_age=max_age, httponly=True, samesite="strict", secure=secure
    )


@router.get("/")
async def home(request: Request, store: AccountsDep) -> Response:
    found = await store.session(request.cookies.get(SESSION_COOKIE))
    target = HOME.get(found.account.role, "/connexion") if found else "/connexion"
    return RedirectResponse(target, status_code=303)


def login_form(
    request: Request, erreur: str | None = None, login: str = "", status: int = 200
) -> HTMLResponse:
    # Double-submit token: no session yet, so the form's token is also a cookie,
    # and a log-in posted from elsewhere (log-in CSRF) carries neither.
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = page(request, "login.html", None, login=login, login_csrf=token, erreur=erreur)
    response.status_code = status
    set_cookie(request, response, LOGIN_CSRF_COOKIE, token, 3600)
    return response


@router.get("/connexion")
async def login_page(request: Request) -> HTMLResponse:
    return login_form(request)


@router.post("/connexion")
async def login(request: Request, store: AccountsDep, proxies: ProxiesDep) -> Response:
    form = await form_of(request)
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(form.get("csrf", "").encode(), expected.encode()):
        raise Refused("Formulaire expiré : rechargez la page de connexion et recommencez.")
    login_name = form.get("identifiant", "").strip().lower()
    address = proxies.client_address(request.scope)
    try:
        found = await store.log_in(login_name, form.get("mot_de_passe", ""), address)
    except Throttled as refused:
        wait = refused.retry_after
        response = login_form(
            request,
            f"Trop d'essais infructueux : réessayez dans {_in_french(wait)}.",
            login_name,
            429,
        )
        response.headers["Retry-After"] = str(wait)
        return response
    if found is None:
        return login_form(request, "Identifiant ou mot de passe inconnu.", login_name)
    if found.account.role not in HOME:
        # A role without pages (none today): refused rather than sent nowhere.
        await store.log_out(found.token)
        return login_form(
            request, "Votre compte n'a pas encore de page dans la console.", login_name
        )
    done = RedirectResponse(HOME[found.account.role], status_code=303)
    set_cookie(request, done, SESSION_COOKIE, found.token, int(ABSOLUTE.total_seconds()))
    done.delete_cookie(LOGIN_CSRF_COOKIE)
    return done


@router.post("/deconnexion")
async def logout(request: Request, store: AccountsDep) -> Response:
    await actor_of(request)  # the CSRF token too: no logging people out from elsewhere
    await store.log_out(request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/connexion", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


async def while_valid(
    store: AccountStore, token: str, stream: AsyncIterator[str]
) -> AsyncIterator[str]:
    # The stream outlives the request that opened it: it ends with the session
    # (log-out, account disabled, expiry, idle), checked at each message or
    # keep-alive without touching it: an open page is not a person's action.
    async for chunk in stream:
        if await store.session(token, touch=False) is None:
            yield EXPIRED
            return
        yield chunk


@router.get("/evenements")
async def events(request: Request, console: ConsoleDep, store: AccountsDep) -> StreamingResponse:
    actor = await actor_of(request, touch=False)
    return StreamingResponse(
        while_valid(store, request.cookies.get(SESSION_COOKIE, ""), console.hub.stream(actor)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _in_french(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} seconde{'s' if seconds > 1 else ''}"
    return f"{math.ceil(seconds / 60)} minutes"
