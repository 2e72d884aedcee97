"""Least privilege on the broker: one RabbitMQ user per service and per outside actor
(each SAMU's Centre 15, each referrer, the ARS, each centre), each allowed to publish
and read only what it must. ``aiguillage broker provision`` applies the plan with
``rabbitmqctl`` or writes it as a definitions file.

Nothing here restates the topology: queues and binding keys come from
``shared.topology`` (SUBSCRIPTIONS, the centres' queues), the keys each actor may
publish from ``shared.contracts`` (PUBLISHERS, routing_key_pattern). A new
subscription or event changes the permissions with it.

What RabbitMQ checks, per virtual host (regexes, anchored here):

- configure (declare, delete), write (publish to an exchange; bind a queue) and read
  (consume or get from a queue; bind from an exchange) on resource names;
- topic permissions on the events and ingress exchanges: ``write`` against the routing
  key of each publish, ``read`` against the binding key of each binding. The second
  matters as much as the first: whoever may bind its own queue could otherwise bind it
  to every centre's keys.

Outside actors write to the ingress exchange only (their own keys: a centre's carry
its id), read their own queue only (declared for them here: they configure nothing,
so no queue of theirs can dead-letter into an exchange of ours), and are held to a
few connections and channels. Only the services write to the events exchange. Only the
operator configures the exchanges and the dead-letter queues: a service publishes its
dead letters to its own dead-letter exchange only, and reads none of them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from shared.contracts import HTTP_DOORS, PUBLISHERS, routing_key_pattern
from shared.events import CapacityAlert, CapacityForecast, EventPayload, ReinforcementRaisedAgain
from shared.regions import ARS_PREFIX, ars_actor, region_departements, regions
from shared.senders import CENTRE_15_KEY
from shared.settings import ServiceName
from shared.territory import NATIONAL_ACTOR, SAMU_PREFIX
from shared.topology import (
    DEAD_LETTER_OWNERS,
    DEAD_LETTER_QUEUE_ARGUMENTS,
    SUBSCRIPTIONS,
    QueueSpec,
    actor_queue,
    centre_queue,
    dead_letter_exchange,
    dead_letter_queue,
    events_exchange,
    exchange_of,
    hubsante_queue,
    ingress_exchange,
    queue_arguments,
    reply_key,
)

# A centre id, a referrer's reply key, a département: one word of a routing key.
WORD = r"[A-Za-z0-9_-]+"
# A binding may also use a wildcard where a routing key has that word.
BINDING_WORD = r"(?:[A-Za-z0-9_-]+|\*|#)"
IDENTIFIER = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
NOTHING = "^$"
EVERYTHING = ".*"

# The key the notifier answers Centre 15 on (reply.centre-15.referral.outcome).
CENTRE_15_REPLY_TO = CENTRE_15_KEY

# Each outside actor's user may hold this many connections and channels at once.
OUTSIDER_LIMITS: dict[str, int] = {"max-connections": 5, "max-channels": 20}

# What an actor kind of contracts.HTTP_DOORS publishes, as producers of PUBLISHERS.
_DOOR_PRODUCERS = {"centre": "centres", "ars": "ars"}

# What an ARS is told on the broker, of its region's départements only (a key that
# names a département): the alerts, the saturation forecasts (issue 31), and the
# requests for reinforcement raised again for want of an answer; the territory, and the
# requests themselves (keyed by the centre, which says no region), it reads over the
# scheduler's API.
ARS_RECEIVES: tuple[type[EventPayload], ...] = (
    CapacityAlert,
    CapacityForecast,
    ReinforcementRaisedAgain,
)

HASHING_ALGORITHM = "rabbit_password_hashing_sha256"


class AccountKind(StrEnum):
    SERVICE = "service"
    CENTRE_15 = "centre_15"
    REFERRER = "referrer"
    ARS = "ars"
    CENTRE = "centre"
    ADMINISTRATOR = "administrator"


@dataclass(frozen=True, slots=True)
class Account:
    """One RabbitMQ user and what it may do in the plan's virtual host."""

    user: str
    kind: AccountKind
    actor: str  # the user name without the deployment's suffix
    configure: str
    write: str
    read: str
    topic_write: str  # routing keys it may publish on the events exchange
    topic_read: str  # binding keys it may bind on the events exchange
    publishes: tuple[str, ...]  # for people: routing keys (contracts' patterns)
    reads: tuple[str, ...]  # for people: queues, and what they may be bound to
    ingress_write: str = NOTHING  # routing keys it may publish on the ingress exchange
    ingress_read: str = NOTHING  # binding keys it may bind on the ingress exchange
    limits: tuple[tuple[str, int], ...] = ()  # RabbitMQ user limits
    reply_bindings: tuple[str, ...] = ()  # an outsider's reply queue's binding keys


@dataclass(frozen=True, slots=True)
class Plan:
    namespace: str
    vhost: str
    accounts: tuple[Account, ...]
    centres: tuple[str, ...]
    suffix: str = ""  # of its users' names (``--user-suffix``)
    # How long a dead letter is kept (issue 34): a message-ttl policy on the plan's
    # dead-letter queues (quorum queues honour it from RabbitMQ 3.10).
    dead_letter_ttl_days: int = 30

    def account(self, actor: str) -> Account:
        """The account of an actor (``intake``, ``centre_15``, ``centre-<id>``...)."""
        for account in self.accounts:
            if account.actor == actor:
                return account
        raise KeyError(actor)

    @property
    def users(self) -> tuple[str, ...]:
        return tuple(a.user for a in self.accounts)

    def queues(self) -> list[QueueSpec]:
        """Every queue the provisioning declares: the services', the centres' and the
        outside actors' reply queues, and each Centre 15's for a Hub Santé door."""
        specs = [spec for specs in SUBSCRIPTIONS.values() for spec in specs]
        specs += [centre_queue(self.namespace, c) for c in self.centres]
        hubsante = [
            _hubsante(self.namespace, a.actor)
            for a in self.accounts
            if a.kind is AccountKind.CENTRE_15
        ]
        return [*specs, *self.actor_queues, *hubsante]

    @property
    def actor_queues(self) -> tuple[QueueSpec, ...]:
        return tuple(
            actor_queue(self.namespace, a.actor, a.reply_bindings)
            for a in self.accounts
            if a.reply_bindings
        )


class ProvisioningError(RuntimeError):
    pass


# -- regexes ------------------------------------------------------------------------


def one_of(alternatives: Iterable[str]) -> str:
    """An anchored regex matching any of ``alternatives`` (regexes), or nothing."""
    unique = sorted(set(alternatives))
    return f"^({'|'.join(unique)})$" if unique else NOTHING


def pattern_regex(pattern: str, word: str = WORD) -> str:
    """A contracts pattern (``slot.assigned.{centre_id}``) as a regex: each placeholder
    is one word."""
    return word.join(re.escape(part) for part in re.split(r"\{[a-z_]+\}", pattern))


def _patterns(events: Iterable[type[EventPayload]]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(routing_key_pattern(cls) for cls in events))


def _reply_bindings(reply_to: str) -> tuple[str, ...]:
    """The keys an actor is answered on: every ``reply.<its key>.`` key."""
    return (reply_key(reply_to),)


# -- the plan -----------------------------------------------------------------------


def _service(namespace: str, service: ServiceName, suffix: str) -> Account:
    specs = SUBSCRIPTIONS[service]
    queues = [re.escape(spec.name(namespace)) for spec in specs]
    bus_bindings = [re.escape(k) for spec in specs if not spec.is_door for k in spec.bindings]
    door_bindings = [re.escape(k) for spec in specs if spec.is_door for k in spec.bindings]
    readable = [spec.name(namespace) for spec in specs]
    centre_dlx: list[str] = []
    if service in (ServiceName.NOTIFIER, ServiceName.SCHEDULER):
        # They declare each centre's queue when the ARS activates the centre (the
        # scheduler before it books the centre's first patient).
        template = centre_queue(namespace, "{centre_id}")
        dlq = re.escape(dead_letter_queue(namespace, template.service))
        dlx_ = re.escape(dead_letter_exchange(namespace, template.service))
        # Any centre's queue, but not the centres' dead letters nor their exchange.
        queues.append(f"(?!({dlq}|{dlx_})$){pattern_regex(template.name(namespace))}")
        # Declaring a queue that dead-letters into it takes write on that exchange.
        centre_dlx.append(dlx_)
        bus_bindings += [pattern_regex(key) for key in template.bindings]
        readable.append(f"{template.name(namespace)} (declares and binds them)")
    publishes = _patterns(PUBLISHERS[service.value])
    door_keys = _patterns(
        cls
        for kind in HTTP_DOORS.get(service.value, ())
        for cls in PUBLISHERS[_DOOR_PRODUCERS[kind]]
    )
    events = re.escape(events_exchange(namespace))
    ingress = re.escape(ingress_exchange(namespace))
    dlx = re.escape(dead_letter_exchange(namespace, service.value))
    written = [events, dlx, *centre_dlx, *queues] + ([ingress] if door_keys else [])
    return Account(
        user=f"{service.value}{suffix}",
        kind=AccountKind.SERVICE,
        actor=service.value,
        configure=one_of(queues),
        write=one_of(written),
        read=one_of([events, ingress, *queues]),
        topic_write=one_of(pattern_regex(p) for p in publishes),
        topic_read=one_of(bus_bindings),
        ingress_write=one_of(pattern_regex(p) for p in door_keys),
        ingress_read=one_of(door_bindings),
        publishes=(
            *publishes,
            *(f"{p} (on the ingress, as the door of its HTTP API)" for p in door_keys),
            f"{dead_letter_exchange(namespace, service.value)} (its dead letters)",
        ),
        reads=tuple(readable),
    )


def service_account(namespace: str, service: ServiceName, suffix: str = "") -> Account:
    """What a service's broker user may do (its runtime checks its outbox against it)."""
    return _service(namespace, service, suffix)


def actor_queue_prefix(namespace: str, actor: str) -> str:
    """The name of an outside actor's reply queue, without its last word."""
    return actor_queue(namespace, actor, ()).name(namespace).removesuffix("replies")


def _hubsante(namespace: str, actor: str) -> QueueSpec:
    """The Hub Santé door's queue of a Centre 15 account (a SAMU's, or the national's)."""
    return hubsante_queue(namespace, None if actor == NATIONAL_ACTOR else actor)


def _outside(
    namespace: str,
    actor: str,
    kind: AccountKind,
    suffix: str,
    producers: Sequence[str],
    bindings: Sequence[str],
) -> Account:
    """An actor that publishes on the ingress and reads the reply queue declared for it."""
    queue = actor_queue(namespace, actor, tuple(bindings)).name(namespace)
    readable = [queue]
    if kind is AccountKind.CENTRE_15:
        # The Hub Santé door connects as its SAMU and reads its own copy of the answers.
        readable.append(_hubsante(namespace, actor).name(namespace))
    publishes = _patterns(cls for producer in producers for cls in PUBLISHERS[producer])
    return Account(
        user=f"{actor}{suffix}",
        kind=kind,
        actor=actor,
        configure=NOTHING,
        write=one_of([re.escape(ingress_exchange(namespace))]),
        read=one_of(re.escape(q) for q in readable),
        topic_write=NOTHING,
        topic_read=NOTHING,
        ingress_write=one_of(pattern_regex(p) for p in publishes),
        publishes=tuple(f"{p} (on the ingress)" for p in publishes),
        reads=tuple(f"{q} ({', '.join(bindings)})" for q in readable),
        limits=tuple(OUTSIDER_LIMITS.items()),
        reply_bindings=tuple(bindings),
    )


def _replies(
    namespace: str,
    actor: str,
    kind: AccountKind,
    suffix: str,
    reply_to: str,
    producers: Sequence[str],
) -> Account:
    return _outside(namespace, actor, kind, suffix, producers, _reply_bindings(reply_to))


def _ars(namespace: str, region: str, suffix: str) -> Account:
    """A region's ARS: it decides on the centres of its region (its door judges it) and
    hears of its départements' alerts and its own answers only."""
    actor = ars_actor(region)
    alerts = [
        pattern.replace("{departement}", code)
        for pattern in _patterns(ARS_RECEIVES)
        for code in sorted(region_departements(region))
    ]
    return _outside(
        namespace, actor, AccountKind.ARS, suffix, ["ars"], [*alerts, *_reply_bindings(actor)]
    )


def _centre(namespace: str, centre_id: str, suffix: str) -> Account:
    spec = centre_queue(namespace, centre_id)
    queue = re.escape(spec.name(namespace))
    # Its own id only: the broker refuses a report on another centre's key.
    publishes = tuple(p.replace("{centre_id}", centre_id) for p in _patterns(PUBLISHERS["centres"]))
    return Account(
        user=f"centre-{centre_id}{suffix}",
        kind=AccountKind.CENTRE,
        actor=f"centre-{centre_id}",
        configure=NOTHING,
        write=one_of([re.escape(ingress_exchange(namespace))]),
        read=one_of([queue]),
        topic_write=NOTHING,
        topic_read=NOTHING,
        ingress_write=one_of(re.escape(p) for p in publishes),
        publishes=tuple(f"{p} (on the ingress)" for p in publishes),
        reads=(f"{spec.name(namespace)} ({', '.join(spec.bindings)})",),
        limits=tuple(OUTSIDER_LIMITS.items()),
    )


def _administrator(user: str) -> Account:
    return Account(
        user=user,
        kind=AccountKind.ADMINISTRATOR,
        actor=user,
        configure=EVERYTHING,
        write=EVERYTHING,
        read=EVERYTHING,
        topic_write=EVERYTHING,
        topic_read=EVERYTHING,
        publishes=("everything",),
        reads=("everything (administrator)",),
        ingress_write=EVERYTHING,
        ingress_read=EVERYTHING,
    )


def _check_identifiers(label: str, values: Sequence[str], reserved: Iterable[str]) -> None:
    taken = set(reserved)
    for value in values:
        if not IDENTIFIER.match(value):
            raise ProvisioningError(f"{label} {value!r}: letters, digits, '-' and '_' only")
        if value in taken:
            raise ProvisioningError(f"{label} {value!r} is reserved")
    if len(set(values)) != len(values):
        raise ProvisioningError(f"a {label} is given twice")


def build_plan(
    namespace: str,
    vhost: str,
    *,
    centres: Sequence[str] = (),
    referrers: Sequence[str] = (),
    user_suffix: str = "",
    administrator: str | None = None,
    samus: Sequence[str] = (),
    national_centre_15: bool = False,
    ars_regions: Sequence[str] = (),
) -> Plan:
    """The users of one deployment (namespace in a virtual host) and their permissions.

    Centre 15 is one user per SAMU (``samu-35``: it refers and decides for its own
    départements, and is answered on its own key ``reply.samu-35.#``); the national
    ``centre_15`` user only where the deployment enables it (``national_centre_15``).
    The ARS is one user per region (``ars-53``: its region's centres, its départements'
    alerts, answered on ``reply.ars-53.#``); no national ARS user (the operators are the
    national path, shared.regions)."""
    # "dlq" would name the centres' dead-letter queue; a referrer answered on Centre
    # 15's key would read Centre 15's answers.
    _check_identifiers("centre id", centres, ["dlq", "dlx"])
    # A referrer's id is its reply key: it must not be another actor's.
    _check_identifiers("referrer id", referrers, [CENTRE_15_REPLY_TO, "ars"])
    for referrer in referrers:
        for prefix, whose in (
            ("centre-", "centres'"),
            (SAMU_PREFIX, "SAMUs'"),
            (ARS_PREFIX, "ARS'"),
        ):
            if referrer.startswith(prefix):
                raise ProvisioningError(
                    f"referrer id {referrer!r}: {prefix!r} is the {whose} prefix"
                )
    _check_identifiers("SAMU", samus, [])
    for samu in samus:
        if not samu.startswith(SAMU_PREFIX):
            raise ProvisioningError(f"SAMU {samu!r}: samu-<département> (samu-35)")
    accounts = [_service(namespace, service, user_suffix) for service in ServiceName]
    centre_15 = [(samu, samu) for samu in samus]
    if national_centre_15:
        centre_15.append((NATIONAL_ACTOR, CENTRE_15_REPLY_TO))
    accounts += [
        _replies(
            namespace, actor, AccountKind.CENTRE_15, user_suffix, key, ["centre_15", "referrers"]
        )
        for actor, key in centre_15
    ]
    accounts += [
        _replies(namespace, f"referrer-{r}", AccountKind.REFERRER, user_suffix, r, ["referrers"])
        for r in referrers
    ]
    _check_identifiers("ARS region", ars_regions, [])
    unknown = sorted(r for r in ars_regions if r not in regions())
    if unknown:
        raise ProvisioningError(f"ARS region {unknown[0]!r}: a region's INSEE code (53)")
    accounts += [_ars(namespace, region, user_suffix) for region in ars_regions]
    accounts += [_centre(namespace, c, user_suffix) for c in centres]
    if administrator is not None:
        accounts.append(_administrator(administrator))
    users = [a.user for a in accounts]
    if len(set(users)) != len(users):
        raise ProvisioningError("two accounts would have the same user name")
    return Plan(namespace, vhost, tuple(accounts), tuple(centres), user_suffix)


# -- definitions --------------------------------------------------------------------


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password))."""
    salt = secrets.token_bytes(4) if salt is None else salt
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def new_password() -> str:
    return secrets.token_urlsafe(24)


def topology_definitions(plan: Plan) -> dict[str, Any]:
    """Exchanges, queues and bindings of the plan's namespace, as RabbitMQ definitions."""
    vhost, ns = plan.vhost, plan.namespace
    events, ingress = events_exchange(ns), ingress_exchange(ns)

    def exchange(name: str, kind: str) -> dict[str, Any]:
        return {
            "name": name,
            "vhost": vhost,
            "type": kind,
            "durable": True,
            "auto_delete": False,
            "internal": False,
            "arguments": {},
        }

    def queue(name: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "name": name,
            "vhost": vhost,
            "durable": True,
            "auto_delete": False,
            "arguments": dict(arguments),
        }

    def binding(source: str, queue_name: str, key: str) -> dict[str, Any]:
        return {
            "source": source,
            "vhost": vhost,
            "destination": queue_name,
            "destination_type": "queue",
            "routing_key": key,
            "arguments": {},
        }

    queues = [
        queue(dead_letter_queue(ns, owner), DEAD_LETTER_QUEUE_ARGUMENTS)
        for owner in DEAD_LETTER_OWNERS
    ]
    bindings = [
        binding(dead_letter_exchange(ns, owner), dead_letter_queue(ns, owner), "")
        for owner in DEAD_LETTER_OWNERS
    ]
    for spec in plan.queues():
        queues.append(queue(spec.name(ns), queue_arguments(ns, spec)))
        bindings += [binding(exchange_of(ns, spec), spec.name(ns), key) for key in spec.bindings]
    return {
        "policies": [dead_letter_policy(ns, vhost, plan.dead_letter_ttl_days)],
        "exchanges": [
            exchange(events, "topic"),
            exchange(ingress, "topic"),
            *(exchange(dead_letter_exchange(ns, owner), "fanout") for owner in DEAD_LETTER_OWNERS),
        ],
        "queues": queues,
        "bindings": bindings,
    }


def dead_letter_policy(namespace: str, vhost: str, days: int) -> dict[str, Any]:
    """The namespace's dead letters expire ``days`` after they were dead-lettered (a
    quorum queue expires from its head: the oldest go first)."""
    owners = "|".join(re.escape(owner) for owner in DEAD_LETTER_OWNERS)
    return {
        "vhost": vhost,
        "name": f"{namespace}-dead-letters-ttl",
        "pattern": f"^{re.escape(namespace)}\\.({owners})\\.dlq$",
        "apply-to": "queues",
        "definition": {"message-ttl": days * 24 * 3600 * 1000},
        "priority": 0,
    }


def definitions(plan: Plan, passwords: Mapping[str, str]) -> dict[str, Any]:
    """The plan as a RabbitMQ definitions document. Users are included only where
    ``passwords`` gives one (a user left out keeps its password on import)."""
    by_user = {a.user: a for a in plan.accounts}
    unknown = set(passwords) - set(by_user)
    if unknown:
        raise ProvisioningError(f"passwords for users not in the plan: {sorted(unknown)}")
    users = [
        {
            "name": user,
            "password_hash": password_hash(password),
            "hashing_algorithm": HASHING_ALGORITHM,
            "tags": ["administrator"] if by_user[user].kind is AccountKind.ADMINISTRATOR else [],
            "limits": dict(by_user[user].limits),
        }
        for user, password in sorted(passwords.items())
    ]
    permissions = [
        {
            "user": a.user,
            "vhost": plan.vhost,
            "configure": a.configure,
            "write": a.write,
            "read": a.read,
        }
        for a in plan.accounts
    ]
    topic_permissions = [
        {
            "user": a.user,
            "vhost": plan.vhost,
            "exchange": exchange,
            "write": write,
            "read": read,
        }
        for a in plan.accounts
        if a.kind is not AccountKind.ADMINISTRATOR
        for exchange, write, read in (
            (events_exchange(plan.namespace), a.topic_write, a.topic_read),
            (ingress_exchange(plan.namespace), a.ingress_write, a.ingress_read),
        )
    ]
    return {
        "users": users,
        "vhosts": [{"name": plan.vhost}],
        "permissions": permissions,
        "topic_permissions": topic_permissions,
        **topology_definitions(plan),
    }


# -- rabbitmqctl --------------------------------------------------------------------


class Rabbitmqctl:
    """The broker's own command line (the management plugin is not needed)."""

    def __init__(
        self, executable: str = "rabbitmqctl", node: str | None = None, timeout: float = 120.0
    ) -> None:
        self.command = [executable, *(["--node", node] if node else [])]
        self.timeout = timeout

    def run(self, *args: str, stdin: str | None = None) -> str:
        try:
            done = subprocess.run(
                [*self.command, *args],
                input=stdin,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
            )
        except FileNotFoundError as exc:
            raise ProvisioningError(f"{self.command[0]} not found: {exc}") from exc
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip()
            raise ProvisioningError(f"rabbitmqctl {args[0]} failed ({done.returncode}): {detail}")
        return done.stdout

    def _json(self, *args: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = json.loads(
            self.run(*args, "--formatter", "json", "--quiet") or "[]"
        )
        return rows

    def users(self) -> set[str]:
        return {row["user"] for row in self._json("list_users")}

    def administrators(self) -> set[str]:
        return {row["user"] for row in self._json("list_users") if "administrator" in row["tags"]}

    def vhost_users(self, vhost: str) -> set[str]:
        """Users with permissions on ``vhost``."""
        return {row["user"] for row in self._json("list_permissions", "--vhost", vhost)}

    def user_vhosts(self, user: str) -> set[str]:
        return {row["vhost"] for row in self._json("list_user_permissions", user)}

    def vhosts(self) -> set[str]:
        return {row["name"] for row in self._json("list_vhosts")}

    def topic_permissions(self, vhost: str) -> list[tuple[str, str]]:
        return [
            (row["user"], row["exchange"])
            for row in self._json("list_topic_permissions", "--vhost", vhost)
        ]

    def import_definitions(self, document: Mapping[str, Any]) -> None:
        # On standard input: the hashes never appear in a file or a process list.
        self.run("import_definitions", "--format", "json", stdin=json.dumps(document))


def apply(
    plan: Plan,
    ctl: Rabbitmqctl,
    given: Mapping[str, str] | None = None,
    *,
    rotate: bool = False,
) -> dict[str, str | None]:
    """Create or update the plan's virtual host, users, permissions and topology.

    A new user gets the password ``given`` for it, or a generated one; an existing
    user keeps its password unless one is given or ``rotate``. Every user's
    permissions are reset to the plan. Returns the password set for each user
    (None: unchanged).
    """
    given = dict(given or {})
    existing = ctl.users()
    passwords: dict[str, str | None] = {}
    for user in plan.users:
        if user in given:
            passwords[user] = given[user]
        elif user not in existing or rotate:
            passwords[user] = new_password()
        else:
            passwords[user] = None
    document = definitions(plan, {u: p for u, p in passwords.items() if p is not None})
    ctl.import_definitions(document)
    for account in plan.accounts:
        if account.limits:
            ctl.run("set_user_limits", account.user, json.dumps(dict(account.limits)))
    remove_stale_users(plan, ctl)
    # Topic permissions on another exchange of this host (an older plan) go, now that
    # those of the plan are in place: clearing first would leave a moment with none,
    # which RabbitMQ reads as "every key".
    keep = {(t["user"], t["exchange"]) for t in document["topic_permissions"]}
    for user, exchange in ctl.topic_permissions(plan.vhost):
        if user in passwords and (user, exchange) not in keep:
            ctl.run("clear_topic_permissions", "--vhost", plan.vhost, user, exchange)
    return passwords


def plan_user_pattern(plan: Plan) -> re.Pattern[str]:
    """The user names a plan of this deployment (its suffix) can give: another
    deployment's users on the same virtual host (another suffix) never match."""
    kinds = "|".join(
        [
            *(re.escape(s.value) for s in ServiceName),
            "centre_15",
            "ars",  # the former national ARS user: removed by provisioning again
            f"{ARS_PREFIX}{WORD}",
            f"referrer-{WORD}",
            f"centre-{WORD}",
            f"{SAMU_PREFIX}{WORD}",
        ]
    )
    return re.compile(f"^({kinds}){re.escape(plan.suffix)}$")


def remove_stale_users(plan: Plan, ctl: Rabbitmqctl) -> list[str]:
    """Users of this deployment (its suffix) that the plan no longer has (a centre closed,
    a referrer struck off) lose their permissions on its virtual host, and are deleted if
    they have none elsewhere. Another deployment's users, and administrators, are left
    alone. Returns the users removed from the host."""
    mine = plan_user_pattern(plan)
    keep = set(plan.users) | ctl.administrators()
    stale = sorted(u for u in ctl.vhost_users(plan.vhost) - keep if mine.match(u))
    for user in stale:
        ctl.run("clear_permissions", "--vhost", plan.vhost, user)
        for _, exchange in [t for t in ctl.topic_permissions(plan.vhost) if t[0] == user]:
            ctl.run("clear_topic_permissions", "--vhost", plan.vhost, user, exchange)
        if not ctl.user_vhosts(user):
            ctl.run("delete_user", user)
    return stale


def remove(plan: Plan, ctl: Rabbitmqctl) -> None:
    """Delete the plan's users and its virtual host (with everything in it)."""
    existing = ctl.users()
    for user in plan.users:
        if user in existing:
            ctl.run("delete_user", user)
    if plan.vhost in ctl.vhosts():
        ctl.run("delete_vhost", plan.vhost)


def broker_url(base_url: str, user: str, password: str, vhost: str) -> str:
    """``base_url``'s host and port, with these credentials and virtual host."""
    parts = urlsplit(base_url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme or "amqp", netloc, "/" + quote(vhost, safe=""), "", ""))
