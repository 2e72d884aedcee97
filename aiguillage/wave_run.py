"""``aiguillage demo --scenario``: a wave on the real services, with the console open.

The four services and the console run as processes in a namespace of their own. The
scenario publishes the ARS's first centres, then each simulated day's referrals spread
over the day's share of wall-clock time (``--speed``); the scheduler's alerts reach the
scenario's ARS (``aiguillage.wave.ArsPolicy``), which opens or ramps up centres as the
events the real ARS would publish. Simulated days compress the wave, not the calendar:
appointments are booked on the real clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import aio_pika
import httpx
from aio_pika.abc import AbstractIncomingMessage
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from aiguillage.console.people import demo_accounts, region_of_departement
from aiguillage.demo import broker_reachable, no_broker, wait_for_consumers, wait_for_drain
from aiguillage.observer import FINAL, Observer
from aiguillage.processes import ServiceProcesses
from aiguillage.wave import (
    SCENARIOS,
    ArsPolicy,
    Scenario,
    daily_referrals,
    departement_of,
    wave_referral,
)
from shared.auth import Role, issue_token
from shared.events import ConsultationOutcome, Envelope, EventPayload, ReferralSubmitted, new_id
from shared.outcomes import refuse_record
from shared.publisher import EventPublisher
from shared.settings import Environment, ServiceName, Settings
from shared.topology import declare_topology, delete_topology, events_exchange

console = Console()

# One simulated day at speed 1.
DAY_SECONDS = 60.0


@dataclass
class Territory:
    """What the ARS reads from the scheduler: waiting per département, the centres."""

    waiting: dict[str, int] = field(default_factory=dict)
    active: int = 0
    centres: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Run:
    scenario: Scenario
    settings: Settings
    namespace: str
    services: ServiceProcesses
    publisher: EventPublisher
    policy: ArsPolicy
    alerts: asyncio.Queue[tuple[str, int]] = field(default_factory=asyncio.Queue)
    alert_count: Counter[str] = field(default_factory=Counter)
    decisions: Counter[str] = field(default_factory=Counter)
    peak_waiting: int = 0
    territory: Territory = field(default_factory=Territory)

    async def decide(self, payloads: list[EventPayload]) -> None:
        for payload in payloads:
            centre_id = str(getattr(payload, "centre_id", ""))
            await self.publisher.publish_envelope(
                Envelope.wrap(payload, source="ars", correlation_id=centre_id),
                payload.routing_key(),
            )
            self.decisions[payload.event_type] += 1

    async def read_territory(self, http: httpx.AsyncClient) -> Territory:
        port = self.services.ports["scheduler"]
        # The scenario's ARS reads its own region, as any ARS (shared.regions).
        region = region_of_departement(departement_of(self.scenario.centres[0].commune_insee))
        token = issue_token(self.settings, Role.ARS, region or "11", ServiceName.SCHEDULER)
        headers = {"Authorization": f"Bearer {token}"}
        base = f"http://127.0.0.1:{port}"
        overview = (await http.get(f"{base}/territory", headers=headers)).json()
        deps = overview["departements"]
        waiting = {d["departement"]: int(d["waiting"]) for d in deps}
        details = await asyncio.gather(
            *(http.get(f"{base}/territory/{d['departement']}", headers=headers) for d in deps)
        )
        centres = [c for r in details for c in r.json()["centres"]]
        self.territory = Territory(
            waiting=waiting,
            active=sum(int(d["active_centres"]) for d in deps),
            centres=centres,
        )
        self.peak_waiting = max(self.peak_waiting, sum(waiting.values()))
        return self.territory


async def _listen_alerts(run: Run) -> aio_pika.abc.AbstractConnection:
    connection = await aio_pika.connect_robust(run.settings.broker_url)
    channel = await connection.channel()
    exchange = await channel.get_exchange(events_exchange(run.namespace))
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(exchange, routing_key="capacity.alert.#")

    async def on_alert(message: AbstractIncomingMessage) -> None:
        with contextlib.suppress(ValueError):
            envelope = Envelope.model_validate_json(message.body)
            dep = str(envelope.data.get("departement"))
            run.alert_count[dep] += 1
            run.alerts.put_nowait((dep, int(envelope.data.get("waiting", 0))))

    await queue.consume(on_alert, no_ack=True)
    return connection


async def _ars(run: Run, http: httpx.AsyncClient, poll: float) -> None:
    """The scenario's ARS: answers alerts; a waiting list that stays counts as one."""
    loop = asyncio.get_running_loop()
    next_read = 0.0
    while True:
        with contextlib.suppress(TimeoutError):
            dep, waiting = await asyncio.wait_for(run.alerts.get(), poll)
            await run.decide(run.policy.on_alert(dep, waiting, loop.time()))
        if loop.time() < next_read:
            continue
        next_read = loop.time() + poll
        with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
            territory = await run.read_territory(http)
            for dep, count in territory.waiting.items():
                if count:
                    await run.decide(run.policy.on_alert(dep, count, loop.time()))


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:] if log.exists() else ""


def busiest_centre(centres: list[dict[str, Any]]) -> str | None:
    """The centre with the most patients today (its page is the one worth showing)."""
    ranked = sorted(
        centres,
        key=lambda c: (-int(c.get("today", {}).get("booked", 0)), c["centre_id"]),
    )
    return ranked[0]["centre_id"] if ranked else None


def _outcomes(
    listing: list[dict[str, Any]], now: datetime
) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """What the demo's centre reports: each outcome on an appointment it is allowed for
    now (shared/outcomes.py), the escalation on any other."""
    left = [a for a in listing if a.get("status") == "booked"]
    chosen: list[tuple[dict[str, Any], dict[str, str]]] = []
    for outcome in (ConsultationOutcome.NO_SHOW, ConsultationOutcome.SEEN):
        for appointment in left:
            start = datetime.fromisoformat(appointment["start"])
            end = datetime.fromisoformat(appointment["end"])
            if refuse_record(outcome, start=start, end=end, now=now) is None:
                chosen.append((appointment, {"outcome": outcome.value, "reason": ""}))
                left.remove(appointment)
                break
    if left:
        worse = {"outcome": "escalated", "reason": "SpO2 à 89 % à l'arrivée, dyspnée"}
        chosen.append((left[0], worse))
    return chosen


async def _centre_outcomes(run: Run, http: httpx.AsyncClient, centre_id: str) -> None:
    """The centre's morning: a patient seen and one absent, where their slot has begun
    or ended (appointments are booked on the real clock: in a short run, none may have),
    one handed back to Centre 15, and a request for reinforcement."""
    port = run.services.ports["notifier"]
    token = issue_token(run.settings, Role.CENTRE, centre_id, ServiceName.NOTIFIER)
    headers = {"Authorization": f"Bearer {token}"}
    base = f"http://127.0.0.1:{port}/centres/{centre_id}/appointments"
    listing = (await http.get(base, headers=headers)).json()["appointments"]
    for appointment, body in _outcomes(listing, datetime.now(UTC)):
        await http.post(
            f"{base}/{appointment['appointment_id']}/outcome", json=body, headers=headers
        )
    await http.post(
        f"http://127.0.0.1:{port}/centres/{centre_id}/reinforcements",
        json={
            "count": 2,
            "profession": "infirmier",
            "from_date": date.today().isoformat(),
            "note": "deux boxes de plus si l'on nous envoie du monde",
        },
        headers=headers,
    )


@dataclass
class _Opened:
    """What a run opened that its end closes, whatever failed in between."""

    alerts_connection: aio_pika.abc.AbstractConnection | None = None
    ars_task: asyncio.Task[None] | None = None


async def run_scenario(
    settings: Settings,
    name: str,
    *,
    speed: float,
    seed: int,
    days: int | None,
    watch: bool,
    screenshots: Path | None,
    console_port: int,
    keep: bool,
    timeout: float,
) -> int:
    if not await broker_reachable(settings.broker_url):
        raise no_broker(settings)
    today = date.today()
    scenario = SCENARIOS[name](today)
    days = days or scenario.days
    day_seconds = DAY_SECONDS / speed
    run_id = f"demo-{uuid.uuid4().hex[:8]}"
    namespace = f"{settings.namespace}-{run_id}"
    run_dir = settings.data_dir / run_id
    console.print(
        f"[bold]Aiguillage — {scenario.title}[/] ({run_id}): {len(scenario.centres)} centres "
        f"prévus, {len(scenario.initially_open)} ouverts au départ; {days} jours simulés de "
        f"{day_seconds:.0f} s"
    )
    await declare_topology(settings.broker_url, namespace)
    observer = Observer(settings.broker_url, namespace, keep_events=False)
    await observer.start()
    services = ServiceProcesses(_demo_env(settings, namespace, run_dir), run_dir / "logs")
    opened = _Opened()
    try:
        url = await _start_processes(services, settings, namespace, console_port)
        console.print(f"console : [bold]{url}/[/] (identifiants : voir la fin)")
        return await _drive(
            scenario,
            settings,
            namespace,
            services,
            observer,
            opened,
            url,
            days=days,
            day_seconds=day_seconds,
            seed=seed,
            timeout=timeout,
            screenshots=screenshots,
            watch=watch,
        )
    finally:
        await _end(settings, namespace, run_dir, scenario, services, observer, opened, keep)


def _demo_env(settings: Settings, namespace: str, run_dir: Path) -> dict[str, str]:
    """The settings of the run's processes."""
    return {
        # A demo (the services and the console take it): development secrets accepted.
        "AIGUILLAGE_ENVIRONMENT": Environment.DEVELOPMENT.value,
        "AIGUILLAGE_NAMESPACE": namespace,
        "AIGUILLAGE_DATA_DIR": str(run_dir),
        "AIGUILLAGE_BROKER_URL": settings.broker_url,
        "AIGUILLAGE_AUTH_SECRET": settings.auth_secret,
        "AIGUILLAGE_LOG_LEVEL": "WARNING",
        # The demo's console is plain http on 127.0.0.1: Secure cookies would not stick.
        "AIGUILLAGE_CONSOLE_SECURE_COOKIES": "false",
    }


async def _start_processes(
    services: ServiceProcesses, settings: Settings, namespace: str, console_port: int
) -> str:
    """The run's console, then its four services, each consuming: the console's URL."""
    with console.status("démarrage des quatre services et de la console..."):
        # The console first (on the port asked, or one the system picks): the
        # patient's link in the notices leads to this run's console.
        port = await asyncio.to_thread(services.start_console, console_port or 0)
        url = f"http://127.0.0.1:{port}"
        services.env["AIGUILLAGE_PATIENT_LINK_BASE_URL"] = url
        await asyncio.to_thread(services.start)
        await wait_for_consumers(settings.broker_url, namespace)
    return url


async def _drive(
    scenario: Scenario,
    settings: Settings,
    namespace: str,
    services: ServiceProcesses,
    observer: Observer,
    opened: _Opened,
    url: str,
    *,
    days: int,
    day_seconds: float,
    seed: int,
    timeout: float,
    screenshots: Path | None,
    watch: bool,
) -> int:
    """The scenario played on the running services, its ARS deciding as alerts come."""
    async with (
        EventPublisher(settings.broker_url, namespace, "demo") as publisher,
        httpx.AsyncClient(timeout=10) as http,
    ):
        run = Run(
            scenario,
            settings,
            namespace,
            services,
            publisher,
            ArsPolicy.for_scenario(scenario, cooldown=day_seconds / 2),
        )
        opened.alerts_connection = await _listen_alerts(run)
        first: list[EventPayload] = list(scenario.first_centres())
        await run.decide(first)
        await wait_for_drain(settings.broker_url, f"{namespace}.scheduler.centres")
        ars_task = asyncio.create_task(_ars(run, http, poll=min(2.0, day_seconds / 10)))
        opened.ars_task = ars_task
        try:
            code = await _play(run, observer, http, days, day_seconds, seed, timeout)
            if screenshots is not None:
                await _screenshots(run, http, url, screenshots)
            _summary(run, observer)
            if watch:
                await _explain_console(run, url)
                await asyncio.Event().wait()  # until Ctrl-C
            return code
        finally:
            # Stopped while its HTTP client is still open: a read of the territory
            # after the client closed fails the whole run (a RuntimeError, not an
            # HTTP error), as it did when the task outlived the client.
            await _cancel(ars_task)


async def _end(
    settings: Settings,
    namespace: str,
    run_dir: Path,
    scenario: Scenario,
    services: ServiceProcesses,
    observer: Observer,
    opened: _Opened,
    keep: bool,
) -> None:
    """The run's end, whatever failed: its processes stopped, its queues and data gone
    unless kept."""
    try:
        if opened.ars_task is not None:
            await _cancel(opened.ars_task)
        if opened.alerts_connection is not None:
            await opened.alerts_connection.close()
    finally:
        # Whatever failed above, no process of the run outlives it.
        services.stop_console()
        services.stop()
    await observer.stop()
    if not keep:
        await delete_topology(
            settings.broker_url, namespace, [c.centre_id for c in scenario.centres]
        )
        shutil.rmtree(run_dir, ignore_errors=True)
    else:
        console.print(f"conservé : namespace {namespace}, données dans {run_dir}")


async def _cancel(task: asyncio.Task[None]) -> None:
    """Stop the scenario's ARS. Its own failure is said, never raised: raised here, it
    skipped the services' stop, and their four processes outlived the run."""
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception as exc:
        console.print(f"[yellow]l'ARS du scénario s'est arrêtée sur une erreur : {exc}[/]")


async def _play(
    run: Run,
    observer: Observer,
    http: httpx.AsyncClient,
    days: int,
    day_seconds: float,
    seed: int,
    timeout: float,
) -> int:
    counts = daily_referrals(days, run.scenario.first_day_referrals, run.scenario.growth)
    rng = random.Random(seed)
    today = date.today()
    index = 0
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        wave = progress.add_task("vague", total=sum(counts), info="")
        handled = progress.add_task("dossiers traités", total=sum(counts), info="")
        for day, count in enumerate(counts, start=1):
            today_task = progress.add_task(f"jour {day}/{days}", total=count, info="")
            started = time.monotonic()
            for i in range(count):
                if run.services.dead():
                    _raise_dead(run)
                reference, referral = wave_referral(run.scenario, rng, index, today)
                index += 1
                observer.submitted(reference)
                await run.publisher.publish_envelope(_envelope(referral), "referral.submitted")
                progress.advance(today_task)
                progress.advance(wave)
                _status(progress, handled, wave, run, observer)
                # The day's referrals spread over its share of wall-clock time.
                pause = started + (i + 1) * day_seconds / count - time.monotonic()
                if pause > 0:
                    await asyncio.sleep(pause)
            progress.remove_task(today_task)
        # After the wave: the ARS keeps opening centres until the waiting list is empty.
        deadline = time.monotonic() + timeout
        drain = progress.add_task("liste d'attente résorbée", total=None, info="")
        while time.monotonic() < deadline:
            if run.services.dead():
                _raise_dead(run)
            with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
                await run.read_territory(http)
            waiting = sum(run.territory.waiting.values())
            progress.update(
                drain,
                total=max(run.peak_waiting, 1),
                completed=run.peak_waiting - waiting,
                info=f"{waiting} en attente",
            )
            _status(progress, handled, wave, run, observer)
            if waiting == 0 and observer.done():
                break
            await asyncio.sleep(1.0)
        _status(progress, handled, wave, run, observer)
    waiting = sum(run.territory.waiting.values())
    return 0 if waiting == 0 and observer.done() else 1


def _raise_dead(run: Run) -> None:
    raise RuntimeError(f"a service stopped: {run.services.dead()}")


def _status(progress: Progress, handled: Any, wave: Any, run: Run, observer: Observer) -> None:
    final = sum(t.state in FINAL for t in observer.tracks.values())
    waiting = sum(run.territory.waiting.values())
    progress.update(handled, completed=final, info=f"{waiting} en attente")
    progress.update(
        wave,
        info=f"{run.territory.active} centres actifs, {sum(run.alert_count.values())} alertes",
    )


def _envelope(referral: ReferralSubmitted | dict[str, object]) -> Envelope:
    if isinstance(referral, ReferralSubmitted):
        return Envelope.wrap(referral, source=referral.referrer.kind.value, correlation_id=new_id())
    # A malformed referral, as a schema would never let us build it.
    return Envelope(type="referral.submitted", source="gp", correlation_id=new_id(), data=referral)


async def _people(run: Run, centres: list[str]) -> list[tuple[str, str, str, str]]:
    """The demo's accounts (the ARS, these centres' coordinators, a regulator), each with
    a fresh password: (role label, login, password, page)."""
    first = run.scenario.centres[0].commune_insee
    dep = departement_of(first)
    region = region_of_departement(dep) or "11"
    people = [("ars@demo.aiguillage.fr", "ARS (démo)", Role.ARS, region)]
    people += [
        (
            f"{cid.lower().replace('_', '-')[:40]}@demo.aiguillage.fr",
            f"Coordination {cid}",
            Role.CENTRE,
            cid,
        )
        for cid in centres
    ]
    people.append(
        ("regulateur@demo.aiguillage.fr", "Régulateur (démo)", Role.CENTRE_15, f"samu-{dep}")
    )
    # The console's database is the run's: the console process reads the same file.
    console_settings = run.settings.model_copy(
        update={"data_dir": Path(run.services.env["AIGUILLAGE_DATA_DIR"])}
    )
    made = await demo_accounts(console_settings, people)
    pages = {
        Role.ARS: ("ARS", "/territoire"),
        Role.CENTRE: ("Centre", "/centre"),
        Role.CENTRE_15: ("Centre 15", "/centre-15"),
    }
    return [(pages[a.role][0], a.login, password, pages[a.role][1]) for a, password in made]


async def _screenshots(run: Run, http: httpx.AsyncClient, url: str, out: Path) -> None:
    from aiguillage.console.screenshots import take_screenshots

    await run.read_territory(http)
    centre_id = busiest_centre(run.territory.centres)
    if centre_id is None:
        console.print("[red]aucun centre : pas de captures[/]")
        return
    await _centre_outcomes(run, http, centre_id)
    # The outcomes travel as events: let the notifier and the console's hub see them.
    await asyncio.sleep(3)
    people = await _people(run, [centre_id])
    logins = [(login, password, page.strip("/")) for _, login, password, page in people]
    paths = await asyncio.to_thread(take_screenshots, url, out, logins)
    # The referrer's page and the patient's page (issue 17): a GP refers a patient of
    # the first centre's commune, then the patient opens the link of the notice.
    paths += await _referrer_screenshots(run, url, out)
    for path in paths:
        console.print(f"capture : {path}")


async def _referrer_screenshots(run: Run, url: str, out: Path) -> list[Path]:
    from aiguillage.console.screenshots import take_referrer_screenshots

    console_settings = run.settings.model_copy(
        update={"data_dir": Path(run.services.env["AIGUILLAGE_DATA_DIR"])}
    )
    ((account, password),) = await demo_accounts(
        console_settings,
        [("medecin@demo.aiguillage.fr", "Dr Demo", Role.REFERRER, "gp-10000000001")],
    )
    commune_insee = run.scenario.centres[0].commune_insee
    return await asyncio.to_thread(
        take_referrer_screenshots, url, out, account.login, password, commune_insee
    )


def _summary(run: Run, observer: Observer) -> None:
    states = Counter(t.state or "en cours" for t in observer.tracks.values())
    table = Table(title=f"{run.scenario.title} : ce que sont devenues les orientations")
    table.add_column("état")
    table.add_column("dossiers", justify="right")
    for state, count in sorted(states.items(), key=lambda kv: -kv[1]):
        table.add_row(state, str(count))
    console.print(table)
    deps = Table(title="Par département")
    for column in ("département", "centres actifs", "alertes", "en attente"):
        deps.add_column(column, justify="right")
    active = Counter(
        str(c.get("departement")) for c in run.territory.centres if c.get("status") == "active"
    )
    for dep in sorted(set(active) | set(run.alert_count)):
        deps.add_row(
            dep,
            str(active[dep]),
            str(run.alert_count[dep]),
            str(run.territory.waiting.get(dep, 0)),
        )
    console.print(deps)
    opened = run.decisions["centre.activated"] - len(run.scenario.initially_open)
    console.print(
        f"l'ARS a ouvert {opened} centres et renforcé {run.decisions['centre.capacity_changed']} "
        f"fois sur alerte ; pic de la liste d'attente : {run.peak_waiting} patients"
    )


async def _explain_console(run: Run, url: str) -> None:
    table = Table(title=f"Console ouverte : {url}/  (Ctrl-C pour tout arrêter)")
    for column in ("rôle", "identifiant", "mot de passe", "page"):
        table.add_column(column)
    centre_id = busiest_centre(run.territory.centres)
    centres = [centre_id] if centre_id else []
    centres += [c.centre_id for c in run.scenario.first_centres() if c.centre_id not in centres][:2]
    for row in await _people(run, centres):
        table.add_row(*row)
    console.print(table)
    console.print(
        "autres comptes : aiguillage console user add --login ... --role centre --centre <id>"
        " (avec AIGUILLAGE_DATA_DIR du run)"
    )


def play_scenario(settings: Settings, name: str, **options: Any) -> int:
    try:
        return asyncio.run(run_scenario(settings, name, **options))
    except KeyboardInterrupt:
        console.print("interrompu : services et console arrêtés")
        return 130
    except RuntimeError as exc:
        console.print(f"[bold red]{exc}[/]")
        return 1
