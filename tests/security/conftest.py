"""The attacks' stage: one provisioned deployment (its own virtual host, one broker
user per service and per actor) and the four services as processes, each under its
own least-privilege user, trusting no operator: every outsider's message is judged by
the broker's permissions, then by the door that takes it.

Two centres far apart (a referral from one's town is booked there, never at the
other) and two referrers; one deployment and one set of processes for the module.
Everything is deleted afterwards: the processes stopped, then the users and the
virtual host with every queue in it.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from aiguillage.processes import ServiceProcesses
from shared.auth import Role, issue_token
from shared.events import Envelope, ReferralSubmitted, ReferrerKind
from shared.events.referral import Referrer
from shared.provisioning import Rabbitmqctl
from shared.release import source_name
from shared.settings import ServiceName
from shared.topology import dead_letter_queue
from tests.helpers import centre, referral
from tests.provisioned import ARS, NODE, Actor, Deployment, deployment

T = TypeVar("T")

CENTRE_A, CENTRE_B = "rennes", "brest"
# Rennes and Brest are 200 km apart, past the scheduler's 60 km reach.
COMMUNES = {CENTRE_A: "35238", CENTRE_B: "29019"}
REFERRER_A, REFERRER_B = "gp-a", "gp-b"
# Marseille: no centre within reach; a referral from there waits on the list.
NOWHERE = "13055"
# Small, so that a message over it costs little to send.
MAX_MESSAGE_BYTES = 16 * 1024
AUTH_SECRET = "security-suite-secret"


def by_referrer(referrer_id: str, reference: str, **fields: Any) -> ReferralSubmitted:
    """A referral in ``referrer_id``'s name, answered on its own key."""
    submission = referral(reference, reply_to=referrer_id, **fields)
    own = Referrer(kind=ReferrerKind.GP, identifier=referrer_id, reply_to=referrer_id)
    return submission.model_copy(update={"referrer": own})


def refusal_of(message_id: str, source: str | None = None) -> Callable[[Envelope], bool]:
    """The door's answer (``request.refused``) to one message."""

    def match(envelope: Envelope) -> bool:
        return (
            envelope.type == "request.refused"
            and envelope.data.get("source_message_id") == message_id
            and (source is None or source_name(envelope.source) == source)
        )

    return match


def answer_to(message_id: str, event_type: str) -> Callable[[Envelope], bool]:
    def match(envelope: Envelope) -> bool:
        return envelope.type == event_type and envelope.data.get("source_message_id") == message_id

    return match


async def eventually(probe: Callable[[], T | None], what: str, timeout: float = 20.0) -> T:
    """``probe()``'s first value that is not None (nor False), polled."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout}s")
        await asyncio.sleep(0.1)


@dataclass
class Stage:
    d: Deployment
    procs: dict[str, ServiceProcesses]
    data_dir: Path
    broker_logs: tuple[Path, ...]
    http: httpx.AsyncClient = field(default_factory=httpx.AsyncClient)

    @property
    def ns(self) -> str:
        return self.d.namespace

    # -- the services' HTTP APIs, with the tokens shared.auth issues ----------------

    def api(self, service: str, path: str) -> str:
        return f"http://127.0.0.1:{self.procs[service].ports[service]}{path}"

    @staticmethod
    def bearer(
        role: Role, subject: str, service: ServiceName = ServiceName.INTAKE
    ) -> dict[str, str]:
        return {"Authorization": f"Bearer {issue_token(AUTH_SECRET, role, subject, service)}"}

    async def referral_status(self, referrer_id: str, referral_id: str) -> str:
        """The status intake shows the referrer (its own referral only)."""
        response = await self.http.get(
            self.api("intake", f"/referrals/{referral_id}"),
            headers=self.bearer(Role.REFERRER, f"gp:{referrer_id}"),
        )
        assert response.status_code == 200, response.text
        status: str = response.json()["status"]
        return status

    async def status_becomes(self, referrer_id: str, referral_id: str, status: str) -> None:
        deadline = time.monotonic() + 20
        while (seen := await self.referral_status(referrer_id, referral_id)) != status:
            assert time.monotonic() < deadline, f"{referral_id}: {seen}, not {status}"
            await asyncio.sleep(0.1)

    async def centres(self, departement: str) -> dict[str, str]:
        """The ARS's view of a département: each centre's status."""
        response = await self.http.get(
            self.api("scheduler", f"/territory/{departement}"),
            headers=self.bearer(Role.ARS, "53", ServiceName.SCHEDULER),
        )
        assert response.status_code == 200, response.text
        return {c["centre_id"]: c["status"] for c in response.json()["centres"]}

    async def set_aside(self) -> int:
        response = await self.http.get(self.api("scheduler", "/ready"))
        assert response.status_code == 200, response.text
        count: int = response.json()["details"]["outbox_set_aside"]
        return count

    # -- the services' databases, read-only (and one write, for attack 7) -----------

    def database(self, service: str) -> Path:
        return self.data_dir / f"{service}.db"

    def query(self, service: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        uri = f"file:{self.database(service)}?mode=ro"
        with sqlite3.connect(uri, uri=True, timeout=10) as connection:
            return list(connection.execute(sql, params))

    def execute(self, service: str, sql: str, *params: Any) -> None:
        connection = sqlite3.connect(self.database(service), timeout=10)
        try:
            with connection:
                connection.execute(sql, params)
        finally:
            connection.close()

    async def booked(self, referral_id: str) -> tuple[str, str]:
        """The referral's booked appointment at the scheduler: (its id, the centre's)."""

        def probe() -> tuple[str, str] | None:
            rows = self.query(
                "scheduler",
                "SELECT id, centre_id FROM appointments WHERE referral_id = ? AND status = ?",
                referral_id,
                "booked",
            )
            return (rows[0][0], rows[0][1]) if rows else None

        return await eventually(probe, f"an appointment for {referral_id}")

    def appointment_status(self, appointment_id: str) -> str:
        [(status,)] = self.query(
            "scheduler", "SELECT status FROM appointments WHERE id = ?", appointment_id
        )
        return str(status)

    def refusal_recorded(self, service: str, message_id: str) -> tuple[Any, ...] | None:
        rows = self.query(
            service,
            "SELECT error_code, field, sender_user FROM refusals WHERE message_id = ?",
            message_id,
        )
        return rows[0] if rows else None

    # -- logs: the services' and the broker's --------------------------------------

    def log_events(self, service: str) -> list[dict[str, Any]]:
        events = []
        for line in self.procs[service].log(service).splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                events.append(event)
        return events

    async def refusal_logged(self, service: str, user: str, code: str) -> dict[str, Any]:
        """The service's ``message refused`` line for this sender's user and code."""

        def probe() -> dict[str, Any] | None:
            for event in self.log_events(service):
                if (
                    event.get("event") == "message refused"
                    and event.get("sender_user") == user
                    and event.get("error_code") == code
                ):
                    return event
            return None

        return await eventually(probe, f"{service} logging {code} from {user}", 10)

    async def broker_logged(self, user: str, *fragments: str) -> str:
        """The broker's own log line of a refusal to ``user`` (RabbitMQ logs every
        channel error, with the user it refused)."""

        def probe() -> str | None:
            for path in self.broker_logs:
                with path.open(errors="replace") as log:
                    for line in log:
                        if f"user '{user}'" in line and all(f in line for f in fragments):
                            return line
            return None

        return await eventually(probe, f"the broker logging {fragments} for {user}", 10)

    # -- the broker, as the deployment's administrator (no service trusts it) --------

    async def as_admin(self, operation: Callable[[AbstractChannel], Awaitable[T]]) -> T:
        assert self.d.administrator is not None
        async with Actor(self.d, self.d.administrator) as admin:
            result: T = await admin.on_channel(operation)
            return result

    async def dead_letter_count(self, owner: str) -> int:
        async def count(channel: AbstractChannel) -> int:
            queue = await channel.declare_queue(dead_letter_queue(self.ns, owner), passive=True)
            return queue.declaration_result.message_count or 0

        return await self.as_admin(count)

    async def dead_letter(self, owner: str, message_id: str) -> AbstractIncomingMessage:
        """The owner's dead letter of one message (the others are left in the queue)."""
        deadline = time.monotonic() + 20
        while True:

            async def find(channel: AbstractChannel) -> AbstractIncomingMessage | None:
                queue = await channel.declare_queue(dead_letter_queue(self.ns, owner), passive=True)
                found = None
                while (message := await queue.get(fail=False, no_ack=False)) is not None:
                    if message.message_id == message_id:
                        await message.ack()
                        found = message
                # Channel closes: the others go back, unacked.
                return found

            letter = await self.as_admin(find)
            if letter is not None:
                return letter
            assert time.monotonic() < deadline, f"no dead letter of {message_id} at {owner}"
            await asyncio.sleep(0.2)

    # -- what an actor is told ---------------------------------------------------

    async def answer(
        self, actor: Actor, match: Callable[[Envelope], bool], timeout: float = 20.0
    ) -> Envelope:
        """The first message on the actor's own queue that ``match``es; the others read
        on the way are dropped (acked)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{actor.actor}: no matching answer in {timeout}s")
            try:
                message = await actor.get(actor.replies, min(remaining, 5))
            except TimeoutError:
                continue
            envelope = Envelope.model_validate_json(message.body)
            if match(envelope):
                return envelope

    async def submit(self, referrer_id: str, reference: str, insee: str) -> str:
        """A genuine referral, in the referrer's own name: its referral id."""
        async with Actor(self.d, f"referrer-{referrer_id}") as referrer:
            sent = await referrer.publish(by_referrer(referrer_id, reference, insee=insee))
            ack = await self.answer(referrer, answer_to(sent.id, "submission.acknowledged"))
        referral_id: str = ack.data["referral_id"]
        return referral_id


def _service_env(d: Deployment, service: str, data_dir: Path) -> dict[str, str]:
    return {
        # Tests run in development mode: their secrets are test values.
        "AIGUILLAGE_ENVIRONMENT": "development",
        # Its own user: what the broker lets that user do is all the service can do.
        "AIGUILLAGE_BROKER_URL": d.url(service),
        "AIGUILLAGE_BROKER_USER_SUFFIX": d.suffix,
        # No operator: nobody's message is believed for its user alone.
        "AIGUILLAGE_BROKER_OPERATORS": f"nobody{d.suffix}",
        "AIGUILLAGE_NAMESPACE": d.namespace,
        "AIGUILLAGE_DATA_DIR": str(data_dir),
        "AIGUILLAGE_AUTH_SECRET": AUTH_SECRET,
        "AIGUILLAGE_OUTBOX_POLL_SECONDS": "0.2",
        "AIGUILLAGE_MAX_DELIVERIES": "2",
        "AIGUILLAGE_RETRY_BACKOFF_SECONDS": "0.05",
        "AIGUILLAGE_MAX_MESSAGE_BYTES": str(MAX_MESSAGE_BYTES),
        "AIGUILLAGE_LOG_JSON": "true",
        "AIGUILLAGE_LOG_LEVEL": "INFO",
    }


def _broker_logs() -> tuple[Path, ...]:
    """Where the broker writes its log, as it says itself."""
    out = Rabbitmqctl(node=NODE).run("status", "--formatter", "json")
    files = json.loads(out).get("log_files", [])
    return tuple(Path(f) for f in files if isinstance(f, str) and Path(f).is_file())


async def _ready(http: httpx.AsyncClient, procs: dict[str, ServiceProcesses]) -> None:
    deadline = time.monotonic() + 90
    for service, proc in procs.items():
        while True:
            dead = proc.dead()
            assert not dead, f"{service} exited: {dead}\n{proc.log(service)[-3000:]}"
            try:
                ready = await http.get(f"http://127.0.0.1:{proc.ports[service]}/ready")
                if ready.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"{service} not ready\n{proc.log(service)[-3000:]}"
            await asyncio.sleep(0.2)


@pytest.fixture(scope="module")
async def stage(broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stage]:
    root = tmp_path_factory.mktemp("security")
    data_dir = root / "data"
    async with deployment(
        broker_url,
        root,
        centres=(CENTRE_A, CENTRE_B),
        referrers=(REFERRER_A, REFERRER_B),
        administrator=True,
    ) as d:
        # One ServiceProcesses per service: each process gets its own broker URL.
        procs = {
            s.value: ServiceProcesses(_service_env(d, s.value, data_dir), root / "logs")
            for s in ServiceName
        }
        try:
            for service, proc in procs.items():
                proc.start(service)
            broker_logs = await asyncio.to_thread(_broker_logs)
            stage = Stage(d, procs, data_dir, broker_logs)
            async with stage.http:
                await _ready(stage.http, procs)
                # The ARS opens the two centres, through its door on the broker.
                async with Actor(d, ARS) as ars:
                    for centre_id, insee in COMMUNES.items():
                        await ars.publish(centre(centre_id, insee))
                for centre_id, insee in COMMUNES.items():
                    departement = insee[:2]

                    async def active(c: str = centre_id, dep: str = departement) -> bool:
                        return (await stage.centres(dep)).get(c) == "active"

                    deadline = time.monotonic() + 30
                    while not await active():
                        assert time.monotonic() < deadline, f"{centre_id} not activated"
                        await asyncio.sleep(0.1)
                yield stage
        finally:
            await asyncio.gather(*(asyncio.to_thread(p.stop) for p in procs.values()))
            for service, proc in procs.items():  # shown by pytest when a test failed
                print(f"--- {service} log ---\n{proc.log(service)[-2000:]}")


def rabbitmq_queues(vhost: str) -> dict[str, dict[str, Any]]:
    """Each queue of the virtual host with its arguments, as the broker lists them."""
    out = Rabbitmqctl(node=NODE).run(
        "list_queues", "-p", vhost, "name", "arguments", "--formatter", "json", "--quiet"
    )
    # Each argument as [name, AMQP type, value].
    return {row["name"]: {a[0]: a[2] for a in row["arguments"]} for row in json.loads(out)}
