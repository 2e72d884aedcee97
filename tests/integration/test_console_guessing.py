"""Issue 28, the console's and the services' doors against a guesser and a shared
computer: log-in throttled atomically per (login, address) and per login, by delays
that grow, never a lock the guesser could put on the account's owner; X-Forwarded-For
believed from the trusted proxies only; no cache keeps a page or an API answer; HSTS
over TLS; a session goes idle on the person's actions, whatever the live stream does."""

from __future__ import annotations

import asyncio
import html
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from aiguillage.console.accounts import EXPIRED
from aiguillage.console.app import create_app
from aiguillage.console.auth import SESSION_COOKIE
from aiguillage.console.people import (
    ACCOUNT_GATE,
    IDLE,
    MAX_FAILURES,
    AccountStore,
    login_failures,
    sessions,
)
from shared.auth import Role, issue_token
from shared.db import as_utc
from shared.http import HSTS
from shared.migrations import upgrade
from shared.settings import ServiceName, Settings
from tests.console_session import csrf_of, log_in

PASSWORD = "correct-horse-battery"
OWNER = "r.le-gall@samu35.fr"
T0 = datetime(2026, 3, 24, 9, 0, tzinfo=UTC)
ATTACKER = "203.0.113.9"
ELSEWHERE = "198.51.100.7"


class Clock:
    """The console's time, moved by the test."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class Console:
    def __init__(self, settings: Settings) -> None:
        self.app = create_app(settings, listen=False)
        self.clock = Clock()

    @property
    def store(self) -> AccountStore:
        store: AccountStore = self.app.state.accounts
        return store

    def client(self, address: str = "127.0.0.1", scheme: str = "https") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(address, 50000))
        return httpx.AsyncClient(transport=transport, base_url=f"{scheme}://console")


def _nothing(request: httpx.Request) -> httpx.Response:
    return httpx.Response(404, json={"detail": "not here"})


async def _started(settings: Settings) -> AsyncIterator[Console]:
    made = Console(settings)
    async with made.app.router.lifespan_context(made.app):
        state = made.app.state.console
        await state.http.aclose()
        state.http = httpx.AsyncClient(transport=httpx.MockTransport(_nothing))
        made.store.clock = made.clock
        await made.store.add(OWNER, "R. Le Gall", Role.CENTRE_15, "samu-35", PASSWORD)
        yield made


def _settings(tmp_path: Path, **extra: Any) -> Settings:
    return Settings(data_dir=tmp_path / "data", namespace="t-console-guess", **extra)


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    async for made in _started(_settings(tmp_path)):
        yield made


@pytest.fixture
async def behind_proxy(tmp_path: Path) -> AsyncIterator[Console]:
    """The console behind a reverse proxy on 127.0.0.1, which it trusts."""
    async for made in _started(_settings(tmp_path, trusted_proxies=["127.0.0.1"])):
        yield made


async def _guesses(
    client: httpx.AsyncClient, count: int, headers: Callable[[int], dict[str, str]]
) -> list[httpx.Response]:
    """``count`` wrong passwords posted at once, from one log-in form."""
    token = csrf_of((await client.get("/connexion")).text)
    form = {"csrf": token, "identifiant": OWNER, "mot_de_passe": "not-the-password"}
    return list(
        await asyncio.gather(
            *(
                client.post("/connexion", data=form, headers=headers(i), follow_redirects=False)
                for i in range(count)
            )
        )
    )


async def _failures_recorded(store: AccountStore) -> int:
    async with store.database.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(login_failures)) or 0)


def _checked(responses: list[httpx.Response]) -> list[httpx.Response]:
    """The attempts whose password was checked (the others: 429, none checked)."""
    assert {r.status_code for r in responses} <= {200, 429}
    for refused in (r for r in responses if r.status_code == 429):
        assert int(refused.headers["retry-after"]) >= 1
        assert "Trop d'essais" in html.unescape(refused.text)
    return [r for r in responses if r.status_code == 200]


async def test_30_concurrent_wrong_log_ins_are_throttled_and_the_owner_still_gets_in(
    console: Console,
) -> None:
    """The attack: 30 log-ins at once for one account, each claiming another address in
    X-Forwarded-For (no proxy is trusted: ignored). The check and the count of each
    attempt are one transaction (AccountStore._admit), so 5 passwords are checked and
    25 are refused unchecked; the right password from the same address next is refused
    too. The account is not locked: its owner, from another address, gets in at once."""
    async with console.client(ATTACKER) as attacker:
        answers = await _guesses(attacker, 30, lambda i: {"X-Forwarded-For": f"10.9.0.{i}"})
        assert len(_checked(answers)) == MAX_FAILURES
        right = await log_in(attacker, OWNER, PASSWORD)
    assert right.status_code == 429
    assert await _failures_recorded(console.store) == MAX_FAILURES
    async with console.client(ELSEWHERE) as owner:
        assert (await log_in(owner, OWNER, PASSWORD)).status_code == 303


async def test_the_delays_grow_and_end(console: Console) -> None:
    """Past the free tries, each attempt from the address waits 2^k seconds more, up to
    the cap: a delay, never a lock; once it has passed, a try is checked again."""
    async with console.client(ATTACKER) as attacker:
        await _guesses(attacker, MAX_FAILURES, lambda i: {})
        waits = []
        for _ in range(4):
            refused = await log_in(attacker, OWNER, "not-the-password")
            assert refused.status_code == 429
            wait = int(refused.headers["retry-after"])
            console.clock.now += timedelta(seconds=wait)
            assert (await log_in(attacker, OWNER, "not-the-password")).status_code == 200
            waits.append(wait)
        assert waits == [1, 2, 4, 8]
        console.clock.now += timedelta(seconds=16)
        assert (await log_in(attacker, OWNER, PASSWORD)).status_code == 303


async def test_guesses_from_many_addresses_delay_a_new_address_a_bounded_time(
    behind_proxy: Console,
) -> None:
    """Behind a trusted proxy, X-Forwarded-For is the address. Thirty guesses from
    thirty addresses at once: the account's own gate checks 10 and refuses the rest.
    The owner on a new address waits at most the account gate's cap (5 minutes), then
    gets in; from that address, now known, a new burst of guesses does not hold them."""
    console = behind_proxy
    async with console.client() as proxy:
        answers = await _guesses(proxy, 30, lambda i: {"X-Forwarded-For": f"10.9.0.{i}"})
        assert len(_checked(answers)) == ACCOUNT_GATE.free
        owner = {"X-Forwarded-For": f"{ELSEWHERE}, 127.0.0.1"}
        delayed = await _log_in_as(proxy, owner)
        assert delayed.status_code == 429
        wait = int(delayed.headers["retry-after"])
        assert 1 <= wait <= ACCOUNT_GATE.cap.total_seconds()
        console.clock.now += timedelta(seconds=wait)
        assert (await _log_in_as(proxy, owner)).status_code == 303
        await _guesses(proxy, 20, lambda i: {"X-Forwarded-For": f"10.8.0.{i}"})
        assert (await _log_in_as(proxy, owner)).status_code == 303
        stranger = await _log_in_as(proxy, {"X-Forwarded-For": "192.0.2.50"})
        assert stranger.status_code == 429


async def _log_in_as(client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    form = await client.get("/connexion")
    return await client.post(
        "/connexion",
        data={"csrf": csrf_of(form.text), "identifiant": OWNER, "mot_de_passe": PASSWORD},
        headers=headers,
        follow_redirects=False,
    )


@pytest.mark.postgres
async def test_concurrent_attempts_pass_one_by_one_on_postgres(postgres: Any) -> None:
    """Thirty attempts at once on PostgreSQL, on ten connections: each gate's upsert
    locks its row, so exactly the free tries are checked."""
    store = AccountStore(await postgres.create("console_guess"))
    try:
        await store.migrate()
        await store.add(OWNER, "R. Le Gall", Role.CENTRE_15, "samu-35", PASSWORD)

        async def guess() -> str:
            try:
                found = await store.log_in(OWNER, "not-the-password", ATTACKER)
            except Exception as exc:
                return type(exc).__name__
            return "checked" if found is None else "in"

        outcomes = await asyncio.gather(*(guess() for _ in range(30)))
        assert outcomes.count("checked") == MAX_FAILURES
        assert outcomes.count("Throttled") == 30 - MAX_FAILURES
        assert await store.log_in(OWNER, PASSWORD, ELSEWHERE) is not None
    finally:
        await store.close()


# -- headers -------------------------------------------------------------------------


async def test_pages_with_identities_are_no_store_and_hsts_over_tls(console: Console) -> None:
    async with console.client() as client:
        assert (await log_in(client, OWNER, PASSWORD)).status_code == 303
        answers = [
            await client.get("/centre-15"),  # the patients to call back
            await client.get("/centre-15/fragment", headers={"X-Fragment": "1"}),
            await client.get("/connexion"),
            await client.get("/nulle-part"),
        ]
    for answer in answers:
        assert answer.headers["cache-control"] == "no-store", answer.url
        assert answer.headers["strict-transport-security"] == HSTS, answer.url
    async with console.client(scheme="http") as plain:
        page = await plain.get("/connexion")
        # Told over http by a peer we do not trust: not believed.
        said = await plain.get("/connexion", headers={"X-Forwarded-Proto": "https"})
    assert page.headers["cache-control"] == said.headers["cache-control"] == "no-store"
    assert "strict-transport-security" not in page.headers
    assert "strict-transport-security" not in said.headers


async def test_a_trusted_proxy_says_the_request_came_over_tls(behind_proxy: Console) -> None:
    async with behind_proxy.client(scheme="http") as proxy:
        page = await proxy.get("/connexion", headers={"X-Forwarded-Proto": "https"})
    assert page.headers["strict-transport-security"] == HSTS


async def test_every_service_api_answer_is_no_store(tmp_path: Path) -> None:
    """Intake's list of the patients to call back (names, phones) and every other
    answer of a service's API, an error too (shared.runtime: SecurityHeaders)."""
    from services.intake.app import build

    settings = Settings(data_dir=tmp_path / "data", namespace="t-api-headers")
    runtime = build(settings, in_memory=True)
    await upgrade(runtime.database, runtime.migrations)
    token = issue_token(settings, Role.CENTRE_15, f"samu-35:{OWNER}", ServiceName.INTAKE)
    transport = httpx.ASGITransport(app=runtime.http_app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="https://intake") as api:
            answers = [
                await api.get("/escalations", headers={"Authorization": f"Bearer {token}"}),
                await api.get("/escalations"),  # 401
                await api.get("/health"),
            ]
    finally:
        await runtime.database.dispose()
    assert [a.status_code for a in answers] == [200, 401, 200]
    for answer in answers:
        assert answer.headers["cache-control"] == "no-store", answer.url
        assert answer.headers["strict-transport-security"] == HSTS, answer.url


# -- sessions ------------------------------------------------------------------------


async def _last_seen(store: AccountStore) -> datetime:
    async with store.database.transaction() as session:
        seen: datetime = (await session.execute(select(sessions.c.last_seen_at))).scalar_one()
    return as_utc(seen)


async def test_the_live_stream_does_not_keep_an_idle_session_alive(console: Console) -> None:
    """A page left open: the stream's keep-alives check the session without touching
    it, so it goes idle 30 minutes after the person's last action, and the stream ends
    then, saying so. The page's own refreshes (X-Fragment) do not count either; the
    person's page loads do."""
    hub = console.app.state.console.hub
    hub.heartbeat = 0.001
    async with console.client() as client:
        assert (await log_in(client, OWNER, PASSWORD)).status_code == 303
        console.clock.now = T0 + timedelta(minutes=20)
        assert (await client.get("/centre-15")).status_code == 200  # the person's
        assert await _last_seen(console.store) == T0 + timedelta(minutes=20)
        console.clock.now = T0 + timedelta(minutes=45)
        await client.get("/centre-15/fragment", headers={"X-Fragment": "1"})
        assert await _last_seen(console.store) == T0 + timedelta(minutes=20)
        # From there, every check of the stream is a minute later: it runs on its
        # keep-alives until the session is idle, then ends.
        ticks = _ticking(console.clock, T0 + timedelta(minutes=46))
        console.store.clock = ticks
        stream = await client.get("/evenements")
        console.store.clock = console.clock
        cookie = client.cookies[SESSION_COOKIE]
    assert stream.status_code == 200
    assert stream.text.count(": keep-alive") >= 2
    assert stream.text.endswith(EXPIRED)
    assert await _last_seen(console.store) == T0 + timedelta(minutes=20)
    assert console.clock.now >= T0 + timedelta(minutes=20) + IDLE
    async with console.client() as client:
        client.cookies.set(SESSION_COOKIE, cookie)
        again = await client.get("/centre-15", follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == "/connexion"


def _ticking(clock: Clock, start: datetime) -> Callable[[], datetime]:
    clock.now = start

    def tick() -> datetime:
        now = clock.now
        clock.now += timedelta(minutes=1)
        return now

    return tick
