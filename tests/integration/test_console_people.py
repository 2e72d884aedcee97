"""The console's people: argon2id passwords, server-side sessions that log-out and
disabling end, CSRF tokens on every form, log-in throttling kept in the database,
security headers, and an ARS person held to their own region, with every action in the
audit trail in the person's name."""

from __future__ import annotations

import html
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from aiguillage.console.app import create_app
from aiguillage.console.auth import SESSION_COOKIE
from aiguillage.console.common import SECURITY_HEADERS
from aiguillage.console.people import (
    MAX_FAILURES,
    AccountStore,
    Throttled,
    login_failures,
    open_store,
)
from shared.auth import Role, read_token
from shared.events import (
    CentreActivated,
    CentreCapacityChanged,
    CentreSuspended,
    EventPayload,
    new_id,
)
from shared.regions import CentreDecisionRefused, Region, judge_centre_decision
from shared.settings import Settings
from tests.console_session import csrf_of, log_in

PASSWORD = "correct-horse-battery"

DAYS: dict[str, Any] = {
    "today": {"booked": 0, "capacity": 10, "occupancy": 0.0},
    "tomorrow": {"booked": 0, "capacity": 10, "occupancy": 0.0},
}
# What the scheduler answers the ARS (the whole territory): a Paris centre (région 11)
# and a Rennes one (53).
TERRITORY: dict[str, Any] = {
    "/territory": {
        "departements": [
            {
                "departement": d,
                "name": n,
                "centres": 1,
                "active_centres": 1,
                "boxes": 2,
                "today": {"booked": 0, "capacity": 10, "occupancy": 0.0},
                "tomorrow": {"booked": 0, "capacity": 10, "occupancy": 0.0},
                "waiting": 0,
                "alerts": [],
            }
            for d, n in (("75", "Paris"), ("35", "Ille-et-Vilaine"))
        ]
    },
    "/territory/75": {
        "centres": [
            {
                "centre_id": "paris-a",
                "name": "Gymnase Paris",
                "kind": "temporary_dedicated",
                "departement": "75",
                "commune_insee": "75113",
                "status": "active",
                "boxes": 2,
                **DAYS,
            }
        ]
    },
    "/territory/35": {
        "centres": [
            {
                "centre_id": "rennes-a",
                "name": "École Rennes",
                "kind": "temporary_dedicated",
                "departement": "35",
                "commune_insee": "35238",
                "status": "active",
                "boxes": 2,
                **DAYS,
            }
        ]
    },
    "/reinforcements": {"reinforcements": []},
}


def text(response: httpx.Response) -> str:
    return html.unescape(response.text)


# The département of each centre as the scheduler stores it.
STORED = {"paris-a": "75", "rennes-a": "35"}


class FakeScheduler:
    """The scheduler's API as the console sees it: its reads, and the ARS's decisions
    judged as the scheduler judges them (shared.regions), on its stored centres."""

    def __init__(self) -> None:
        self.decisions: list[EventPayload] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return self.decide(request)
        body = TERRITORY.get(request.url.path)
        return httpx.Response(200, json=body) if body is not None else httpx.Response(404)

    def decide(self, request: httpx.Request) -> httpx.Response:
        token = request.headers["authorization"].removeprefix("Bearer ")
        region = Region(read_token(token).subject)
        body = json.loads(request.content)
        parts = request.url.path.strip("/").split("/")
        payload: EventPayload
        if parts == ["centres"]:
            payload = CentreActivated.model_validate(body)
        elif parts[-1] == "capacity":
            payload = CentreCapacityChanged(centre_id=parts[1], **body)
        else:
            payload = CentreSuspended(centre_id=parts[1], **body)
        centre_id = str(getattr(payload, "centre_id", ""))
        try:
            judge_centre_decision(region, STORED.get(centre_id), payload)
        except CentreDecisionRefused as refused:
            return httpx.Response(403, json={"detail": str(refused), "error_code": refused.code})
        self.decisions.append(payload)
        return httpx.Response(202, json={"event_id": new_id(), "event_type": payload.event_type})


@pytest.fixture
def console_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", namespace="t-console-people")


@pytest.fixture
async def store(console_settings: Settings) -> AsyncIterator[AccountStore]:
    opened = await open_store(console_settings)
    try:
        yield opened
    finally:
        await opened.close()


class Console:
    def __init__(self, settings: Settings) -> None:
        self.app = create_app(settings, listen=False)
        self.scheduler = FakeScheduler()

    def client(self) -> httpx.AsyncClient:
        # https: the cookies are Secure, and httpx, like a browser, keeps them to https.
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="https://console"
        )


@pytest.fixture
async def console(console_settings: Settings, store: AccountStore) -> AsyncIterator[Console]:
    made = Console(console_settings)
    async with made.app.router.lifespan_context(made.app):
        state = made.app.state.console
        await state.http.aclose()
        state.http = httpx.AsyncClient(transport=httpx.MockTransport(made.scheduler))
        yield made


async def test_passwords_are_stored_as_argon2id_hashes(store: AccountStore) -> None:
    _, generated = await store.add("a.martin@ars.fr", "A. Martin", Role.ARS, "11")
    stored = await store.password_hash("a.martin@ars.fr")
    assert stored is not None and stored.startswith("$argon2id$")
    assert generated not in stored
    await store.add("b.morvan@ars.fr", "B. Morvan", Role.ARS, "53", PASSWORD)
    other = await store.password_hash("b.morvan@ars.fr")
    assert other is not None and other.startswith("$argon2id$") and PASSWORD not in other
    # Salted: the same password twice is two different hashes.
    await store.add("c.morvan@ars.fr", "C. Morvan", Role.ARS, "53", PASSWORD)
    assert await store.password_hash("c.morvan@ars.fr") != other


async def test_the_cookie_is_secure_httponly_strict_and_holds_only_a_session_id(
    console: Console, store: AccountStore
) -> None:
    await store.add("a.martin@ars.fr", "A. Martin", Role.ARS, "11", PASSWORD)
    async with console.client() as client:
        response = await log_in(client, "a.martin@ars.fr", PASSWORD)
    assert response.status_code == 303 and response.headers["location"] == "/territoire"
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE)
    )
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    value = cookie.split(";")[0].split("=", 1)[1]
    assert "ars" not in value and "martin" not in value and len(value) >= 43


async def test_log_in_is_throttled_after_repeated_failures_even_across_restarts(
    console_settings: Settings, console: Console, store: AccountStore
) -> None:
    # One instant for both consoles: the delay after the fifth failure is a second or
    # two, and a console restarting on a loaded machine may take longer than that
    # (the gate would rightly be open again by then, and the test would prove nothing).
    frozen = datetime.now(UTC)
    console.app.state.accounts.clock = lambda: frozen
    await store.add("a.martin@ars.fr", "A. Martin", Role.ARS, "11", PASSWORD)
    async with console.client() as client:
        for _ in range(MAX_FAILURES):
            wrong = await log_in(client, "a.martin@ars.fr", "not-the-password")
            assert wrong.status_code == 200 and "inconnu" in text(wrong)
        refused = await log_in(client, "a.martin@ars.fr", PASSWORD)  # even the right one
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0
    assert "Trop d'essais" in text(refused)
    # Counted in the database: a console started again still refuses.
    again = Console(console_settings)
    async with again.app.router.lifespan_context(again.app), again.client() as client:
        again.app.state.accounts.clock = lambda: frozen
        assert (await log_in(client, "a.martin@ars.fr", PASSWORD)).status_code == 429
        # Per login and address: a colleague behind the same address is not held up.
        await store.add("b.morvan@ars.fr", "B. Morvan", Role.ARS, "53", PASSWORD)
        assert (await log_in(client, "b.morvan@ars.fr", PASSWORD)).status_code == 303
    async with store.database.transaction() as session:
        rows = (await session.execute(select(login_failures.c.login))).scalars().all()
    assert rows.count("a.martin@ars.fr") == MAX_FAILURES


async def test_log_out_revokes_the_session_on_the_server(
    console: Console, store: AccountStore
) -> None:
    await store.add("a.martin@ars.fr", "A. Martin", Role.ARS, "11", PASSWORD)
    async with console.client() as client:
        assert (await log_in(client, "a.martin@ars.fr", PASSWORD)).status_code == 303
        old = client.cookies[SESSION_COOKIE]
        page = await client.get("/territoire")
        assert page.status_code == 200
        out = await client.post(
            "/deconnexion", data={"csrf": csrf_of(page.text)}, follow_redirects=False
        )
        assert out.status_code == 303
    # The old cookie, kept by whoever copied it, no longer opens anything.
    async with console.client() as replay:
        replay.cookies.set(SESSION_COOKIE, old)
        again = await replay.get("/territoire", follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == "/connexion"


async def test_disabling_an_account_revokes_its_sessions(
    console: Console, store: AccountStore
) -> None:
    await store.add("c.durand@chu-rennes.fr", "C. Durand", Role.CENTRE, "rennes-a", PASSWORD)
    async with console.client() as client:
        assert (await log_in(client, "c.durand@chu-rennes.fr", PASSWORD)).status_code == 303
        cookie = client.cookies[SESSION_COOKIE]
        assert await store.session(cookie) is not None
        assert await store.disable("c.durand@chu-rennes.fr") == 1
        after = await client.get("/centre", follow_redirects=False)
        assert after.status_code == 303 and after.headers["location"] == "/connexion"
        # Nor may it log in again.
        assert (await log_in(client, "c.durand@chu-rennes.fr", PASSWORD)).status_code == 200
    assert await store.session(cookie) is None


async def test_a_form_without_its_csrf_token_is_refused(
    console: Console, store: AccountStore
) -> None:
    await store.add("a.martin@ars.fr", "A. Martin", Role.ARS, "11", PASSWORD)
    async with console.client() as client:
        assert (await log_in(client, "a.martin@ars.fr", PASSWORD)).status_code == 303
        token = csrf_of((await client.get("/territoire")).text)
        form = {"centre_id": "paris-a", "motif": "essai"}
        missing = await client.post("/territoire/suspendre", data=form)
        wrong = await client.post("/territoire/suspendre", data={**form, "csrf": "x" * 43})
        assert missing.status_code == wrong.status_code == 403
        assert "Formulaire expiré ou falsifié" in text(missing)
        assert console.scheduler.decisions == []
        # The log-out form too, and the log-in form (log-in CSRF).
        assert (await client.post("/deconnexion")).status_code == 403
        ok = await client.post("/territoire/suspendre", data={**form, "csrf": token})
        assert ok.status_code == 303
    async with console.client() as fresh:
        no_token = await fresh.post(
            "/connexion", data={"identifiant": "a.martin@ars.fr", "mot_de_passe": PASSWORD}
        )
        assert no_token.status_code == 403
    assert len(console.scheduler.decisions) == 1


async def test_an_ars_person_of_another_region_is_refused(
    console: Console, store: AccountStore
) -> None:
    await store.add("b.morvan@ars-bretagne.fr", "B. Morvan", Role.ARS, "53", PASSWORD)
    async with console.client() as client:
        assert (await log_in(client, "b.morvan@ars-bretagne.fr", PASSWORD)).status_code == 303
        page = await client.get("/territoire")
        # Their region only: Rennes, not Paris.
        assert 'data-centre="rennes-a"' in page.text
        assert 'data-centre="paris-a"' not in page.text
        assert 'data-departement="75"' not in page.text
        token = csrf_of(page.text)
        activate = await client.post(
            "/territoire/activer",
            data={"csrf": token, "centre_id": "paris-b", "nom": "Paris B", "commune": "75113"},
        )
        assert activate.status_code == 403
        assert "n'est pas dans votre région (Bretagne)" in text(activate)
        for path in ("/territoire/suspendre", "/territoire/capacite"):
            other = await client.post(
                path, data={"csrf": token, "centre_id": "paris-a", "boxes": "4"}
            )
            assert other.status_code == 403, path
            assert "n'est pas un centre de votre région" in text(other)
        # Paris's centre activated again with a Breton commune: the scheduler judges it
        # on the centre as it stores it, and refuses it (issue 28).
        moved = await client.post(
            "/territoire/activer",
            data={"csrf": token, "centre_id": "paris-a", "nom": "Brest", "commune": "29019"},
        )
        assert moved.status_code == 403
        assert "celui d'un centre d'une autre région" in text(moved)
        assert console.scheduler.decisions == []
        # Their own centre: sent to the scheduler with their region's token.
        own = await client.post(
            "/territoire/suspendre", data={"csrf": token, "centre_id": "rennes-a"}
        )
        assert own.status_code == 303
    [decision] = console.scheduler.decisions
    assert decision.event_type == "centre.suspended"


async def test_every_action_is_in_the_audit_trail_of_the_region(
    console: Console, store: AccountStore
) -> None:
    await store.add("b.morvan@ars-bretagne.fr", "B. Morvan", Role.ARS, "53", PASSWORD)
    await store.add("a.martin@ars.fr", "A. Martin", Role.ARS, "11", PASSWORD)
    async with console.client() as client:
        await log_in(client, "b.morvan@ars-bretagne.fr", PASSWORD)
        token = csrf_of((await client.get("/territoire")).text)
        await client.post("/territoire/suspendre", data={"csrf": token, "centre_id": "rennes-a"})
        audit = await client.get("/audit")
    assert audit.status_code == 200
    assert "b.morvan@ars-bretagne.fr" in text(audit) and "suspension d'un centre" in text(audit)
    assert "rennes-a" in text(audit)
    async with console.client() as other:
        await log_in(other, "a.martin@ars.fr", PASSWORD)
        elsewhere = await other.get("/audit")
    assert "b.morvan@ars-bretagne.fr" not in text(elsewhere)  # another region's trail


async def test_security_headers_on_every_response(console: Console) -> None:
    async with console.client() as client:
        responses = [
            await client.get("/connexion"),
            await client.get("/static/console.js"),
            await client.get("/territoire"),  # a redirect
            await client.get("/nulle-part"),  # a 404
        ]
    for response in responses:
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, (response.url, name)
    csp = responses[0].headers["content-security-policy"]
    assert "'unsafe-inline'" not in csp and "frame-ancestors 'none'" in csp
    assert "<script>" not in responses[0].text and "style=" not in responses[0].text


@pytest.mark.postgres
async def test_accounts_sessions_and_failures_on_postgres(postgres: Any) -> None:
    # One instant: the gate reopens a second after the fifth failure, less than an
    # argon2id check takes on a loaded machine.
    frozen = datetime.now(UTC)
    store = AccountStore(await postgres.create("console"), clock=lambda: frozen)
    try:
        await store.migrate()
        await store.add("a.martin@ars.fr", "A. Martin", Role.ARS, "11", PASSWORD)
        session = await store.log_in("a.martin@ars.fr", PASSWORD, "10.0.0.1")
        assert session is not None and (await store.session(session.token)) is not None
        for _ in range(MAX_FAILURES):
            assert await store.log_in("a.martin@ars.fr", "wrong-password!", "10.0.0.2") is None
        with pytest.raises(Throttled):
            await store.log_in("a.martin@ars.fr", PASSWORD, "10.0.0.2")
        # Its owner, from the address they logged in from, is not held up.
        assert await store.log_in("a.martin@ars.fr", PASSWORD, "10.0.0.1") is not None
        await store.disable("a.martin@ars.fr")
        assert await store.session(session.token) is None
    finally:
        await store.close()


async def test_a_body_over_the_bound_is_refused_before_it_is_read(console: Console) -> None:
    async with console.client() as client:
        response = await client.post(
            "/connexion",
            content=b"identifiant=" + b"x" * (console_limit() + 1),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    assert response.status_code == 413


def console_limit() -> int:
    return Settings().max_body_bytes


async def test_a_centre_exports_its_day_as_a_french_spreadsheet(
    console: Console, store: AccountStore
) -> None:
    """Its own day's patients, as the notifier lists them to it: ``;`` between cells,
    UTF-8 announced by a BOM (the accents intact in a French spreadsheet), French words,
    Paris times; asked for its own centre only (the notifier's route is its own)."""
    day = {
        "centre_id": "rennes-a",
        "centre": {"name": "Centre Covid Rennes", "address": None, "commune_insee": "35238"},
        "day": "2020-03-30",
        "appointments": [
            {
                "appointment_id": "a-1",
                "referral_id": "r-1",
                "patient_ref": "p-1",
                "patient_name": "Éloïse Dupont-Lajoie",
                "start": "2020-03-30T07:00:00+00:00",
                "end": "2020-03-30T07:20:00+00:00",
                "box": 2,
                "priority": "urgent",
                "status": "booked",
                "test_eligible": True,
                "referrer_kind": "gp",
                "outcome_at": None,
                "correctable_until": None,
            }
        ],
    }
    TERRITORY["/centres/rennes-a/appointments"] = day
    try:
        await store.add("c.durand@chu-rennes.fr", "C. Durand", Role.CENTRE, "rennes-a", PASSWORD)
        async with console.client() as client:
            assert (await log_in(client, "c.durand@chu-rennes.fr", PASSWORD)).status_code == 303
            response = await client.get("/centre/export.csv", params={"jour": "2020-03-30"})
    finally:
        del TERRITORY["/centres/rennes-a/appointments"]
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="centre-rennes-a-2020-03-30.csv"' in response.headers["content-disposition"]
    assert response.content.startswith("\ufeff".encode())
    lines = response.content.decode("utf-8-sig").split("\r\n")
    assert lines[0] == "Date;Début;Fin;Box;Patient;Priorité;Test à prescrire;Adressé par;État"
    [row] = [line for line in lines[1:] if line]
    cells = row.split(";")
    # 07:00 UTC is 09:00 in Paris (summer time from 29 March 2020).
    assert cells[:5] == ["2020-03-30", "09:00", "09:20", "2", "Éloïse Dupont-Lajoie"]
    assert cells[6] == "oui" and cells[5] and cells[7] and cells[8]
    assert not any(code in cells for code in ("urgent", "gp", "booked"))
