"""The console's people: named accounts, server-side sessions, log-in throttling, audit.

Each person who logs in to the console has an account of their own (a regulator of a
Centre 15, an ARS officer of one region, the coordinator of one centre, a referring
doctor), so that every action the console takes is someone's and can be revoked with
the account. Passwords are argon2id hashes (argon2-cffi); a session is a row the cookie
names by a random 256-bit token, so log-out and disabling an account end it on the
server, not only in the browser. The tables live in the console's own database (SQLite
under AIGUILLAGE_DATA_DIR, or AIGUILLAGE_CONSOLE_DATABASE_URL), migrated with Alembic as
the services' are.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import math
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Role
from shared.db import Database, as_utc
from shared.geo import departement, departements
from shared.migrations import upgrade
from shared.settings import Settings

MIGRATIONS = "aiguillage.console:migrations"

# Roles a person may hold; the referrer's pages come with the next issue, the account
# kind exists now so that referring doctors can be enrolled ahead of it.
PERSON_ROLES = (Role.ARS, Role.CENTRE, Role.CENTRE_15, Role.REFERRER)
# An e-mail-like identifier, at most 64 characters: it becomes a regulator's
# ``regulator_id`` (64 at most) and the envelope's ``source`` (``console:<login>``).
LOGIN = re.compile(r"^[a-z0-9][a-z0-9._+-]*@[a-z0-9-]+(\.[a-z0-9-]+)+$")
LOGIN_MAX = 64
ACTOR_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SAMU = re.compile(r"^samu-[0-9][0-9AB][0-9]?$")
MIN_PASSWORD = 12

IDLE = timedelta(minutes=30)
ABSOLUTE = timedelta(hours=12)
# last_seen is written at most this often: a write per page request is wasted work.
TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class Gate:
    """How often one key (a login from one address, or a login from anywhere) may be
    tried: ``free`` attempts back to back, then each attempt opens the gate again
    2^k seconds later only, k the attempts past ``free``, at most ``cap``: a delay
    that grows, never a lock."""

    free: int
    cap: timedelta

    def delay(self, attempts: int) -> timedelta:
        if attempts < self.free:
            return timedelta(0)
        return min(timedelta(seconds=2 ** min(attempts - self.free, 20)), self.cap)


# A login from one address: 5 tries back to back, then 1, 2, 4 s... up to 15 minutes.
MAX_FAILURES = 5
PAIR_GATE = Gate(MAX_FAILURES, timedelta(minutes=15))
# A login from every address at once (a guesser with many addresses): more tries, and a
# short cap, since the account's owner on a new address waits behind it; an address
# the owner logged in from lately does not (KNOWN_ADDRESS).
ACCOUNT_GATE = Gate(10, timedelta(minutes=5))
ANY_ADDRESS = "*"
# A key's attempts start again from one after this long without any: a password
# mistyped yesterday does not delay today. Longer than both caps, so a guesser who
# waits out each delay is never forgotten.
FORGET_AFTER = timedelta(hours=1)
KNOWN_ADDRESS = timedelta(days=30)
PRUNE_EVERY = timedelta(minutes=10)

metadata = sa.MetaData()

accounts = sa.Table(
    "console_accounts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("login", sa.String(LOGIN_MAX), nullable=False, unique=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    # What the person acts for: a centre's id, an ARS region code, a Centre 15
    # (samu-<département>), a referrer's id.
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    # Since when it is disabled (None: enabled): deleted a retention after it (issue 34,
    # aiguillage/console/retention.py).
    sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
)

sessions = sa.Table(
    "console_sessions",
    metadata,
    # SHA-256 of the cookie's token: a copy of the table does not let anyone in.
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column(
        "account_id",
        sa.Integer,
        sa.ForeignKey("console_accounts.id"),
        nullable=False,
        index=True,
    ),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)

# The trail of failed log-ins (who was tried, from where, when).
login_failures = sa.Table(
    "console_login_failures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("login", sa.String(320), nullable=False, index=True),
    sa.Column("address", sa.String(64), nullable=False, index=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
)

# The throttle's gates: one row per (login, address), and per login (address "*").
login_attempts = sa.Table(
    "console_login_attempts",
    metadata,
    sa.Column("login", sa.String(320), primary_key=True),
    sa.Column("address", sa.String(64), primary_key=True),
    # Attempts counted before their password is checked (a success takes its back).
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_at", sa.DateTime(timezone=True), nullable=False, index=True),
    # No attempt is checked before this; the next one counted pushes it (Gate.delay).
    sa.Column("open_at", sa.DateTime(timezone=True), nullable=False),
    # The last log-in from this address: the owner's address (KNOWN_ADDRESS).
    sa.Column("succeeded_at", sa.DateTime(timezone=True), nullable=True),
)

audit = sa.Table(
    "console_audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("login", sa.String(LOGIN_MAX), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    # The region the action concerns, so that an ARS reads its own region's actions.
    sa.Column("region", sa.String(3), nullable=True, index=True),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("centre_id", sa.String(64), nullable=True),
    sa.Column("referral_id", sa.String(64), nullable=True),
    sa.Column("detail", sa.Text, nullable=False, default=""),
    sa.Column("event_id", sa.String(64), nullable=True),
)

_hasher = PasswordHasher()  # argon2id, the library's current parameters


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the login is unknown, so that the answer takes as long as
    for a known login with a wrong password (no telling which logins exist by timing).
    Made on first use, not at import: an argon2id hash takes 64 MB and most of a second,
    and every service process imports this module through the command line."""
    return _hasher.hash(secrets.token_urlsafe(16))


class AccountError(ValueError):
    """A request the operator must correct; the message says what, in French."""


class Throttled(Exception):
    """Too many log-in attempts lately: no password was checked; try again in
    ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = retry_after


def utcnow() -> datetime:
    return datetime.now(UTC)


def region_codes() -> dict[str, str]:
    return {d.region_code: d.region_name for d in departements()}


def region_departements(region: str) -> frozenset[str]:
    return frozenset(d.code for d in departements() if d.region_code == region)


def region_of_departement(code: str) -> str | None:
    found = departement(code)
    return found.region_code if found else None


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def generate_password() -> str:
    # Four groups of five: read out on the phone, about 100 bits.
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    raw = "".join(secrets.choice(alphabet) for _ in range(20))
    return "-".join(raw[i : i + 5] for i in range(0, 20, 5))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Account:
    id: int
    login: str
    name: str
    role: Role
    actor: str
    disabled: bool
    created_at: datetime
    updated_at: datetime

    @property
    def region(self) -> str | None:
        """The region whose actions this person's are (an ARS's own; a Centre 15's)."""
        if self.role is Role.ARS:
            return self.actor
        if self.role is Role.CENTRE_15:
            return region_of_departement(self.actor.removeprefix("samu-"))
        return None


@dataclass(frozen=True)
class Session:
    token: str  # only in the cookie, and here right after log-in
    account: Account
    csrf: str


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    login: str
    role: str
    action: str
    centre_id: str | None
    referral_id: str | None
    detail: str


def _account(row: Any) -> Account:
    return Account(
        id=row.id,
        login=row.login,
        name=row.name,
        role=Role(row.role),
        actor=row.actor,
        disabled=bool(row.disabled),
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
    )


def check_actor(role: Role, actor: str) -> str:
    """The actor an account of ``role`` acts for, checked; AccountError if it is not one."""
    if role is Role.ARS:
        if actor not in region_codes():
            raise AccountError(f"aucune région de code {actor!r} (ex. 11 Île-de-France)")
    elif role is Role.CENTRE_15:
        if not SAMU.match(actor) or departement(actor.removeprefix("samu-")) is None:
            raise AccountError(f"Centre 15 inconnu {actor!r} (attendu samu-<département>)")
    elif role in (Role.CENTRE, Role.REFERRER, Role.DPO):
        if not ACTOR_ID.match(actor):
            raise AccountError(f"identifiant invalide {actor!r} (lettres, chiffres, - et _)")
    else:
        raise AccountError(f"rôle {role.value!r} sans compte de console")
    return actor


def check_login(login: str) -> str:
    login = login.strip().lower()
    if len(login) > LOGIN_MAX or not LOGIN.match(login):
        raise AccountError(
            f"identifiant {login!r} invalide : une adresse de type prenom.nom@domaine.fr "
            f"de {LOGIN_MAX} caractères au plus"
        )
    return login


class AccountStore:
    """Accounts, sessions, failures and audit, in the console's database."""

    def __init__(self, url: str, clock: Callable[[], datetime] = utcnow) -> None:
        self.database = Database(url)
        # The time of sessions and log-ins (tests move it).
        self.clock = clock
        self._pruned_at: datetime | None = None

    @classmethod
    def for_settings(cls, settings: Settings) -> AccountStore:
        return cls(settings.console_database())

    async def migrate(self) -> None:
        await upgrade(self.database, MIGRATIONS)

    async def close(self) -> None:
        await self.database.dispose()

    # -- accounts (the operator's commands) --------------------------------------------

    async def add(
        self, login: str, name: str, role: Role, actor: str, password: str | None = None
    ) -> tuple[Account, str]:
        """A new account, and its password (generated unless given)."""
        login = check_login(login)
        actor = check_actor(role, actor)
        if not name.strip():
            raise AccountError("le nom affiché est obligatoire")
        password = password if password is not None else generate_password()
        _check_password_strength(password)
        now = utcnow()
        async with self.database.transaction() as session:
            if await self._row(session, login) is not None:
                raise AccountError(f"le compte {login} existe déjà")
            await session.execute(
                accounts.insert().values(
                    login=login,
                    name=name.strip(),
                    role=role.value,
                    actor=actor,
                    password_hash=hash_password(password),
                    disabled=False,
                    created_at=now,
                    updated_at=now,
                )
            )
            row = await self._row(session, login)
        assert row is not None
        return _account(row), password

    async def reset(self, login: str, password: str | None = None) -> str:
        """A new password (generated unless given); re-enables the account and ends its
        sessions, since a reset is what follows a lost or leaked password."""
        password = password if password is not None else generate_password()
        _check_password_strength(password)
        async with self.database.transaction() as session:
            row = await self._existing(session, login)
            now = utcnow()
            await session.execute(
                accounts.update()
                .where(accounts.c.id == row.id)
                .values(
                    password_hash=hash_password(password),
                    disabled=False,
                    disabled_at=None,
                    updated_at=now,
                )
            )
            await self._revoke_all(session, row.id, now)
        return password

    async def disable(self, login: str) -> int:
        """Disables the account and revokes its sessions; how many were revoked."""
        async with self.database.transaction() as session:
            row = await self._existing(session, login)
            now = utcnow()
            await session.execute(
                accounts.update()
                .where(accounts.c.id == row.id)
                # Disabled again: its retention still counts from the first time.
                .values(
                    disabled=True,
                    disabled_at=sa.func.coalesce(accounts.c.disabled_at, now),
                    updated_at=now,
                )
            )
            return await self._revoke_all(session, row.id, now)

    async def all(self) -> list[Account]:
        async with self.database.transaction() as session:
            rows = (await session.execute(accounts.select().order_by(accounts.c.login))).all()
        return [_account(r) for r in rows]

    async def get(self, login: str) -> Account | None:
        async with self.database.transaction() as session:
            row = await self._row(session, login.strip().lower())
        return _account(row) if row is not None else None

    async def password_hash(self, login: str) -> str | None:
        async with self.database.transaction() as session:
            row = await self._row(session, login.strip().lower())
        return None if row is None else str(row.password_hash)

    # -- log-in and sessions (the console) -------------------------------------------

    async def log_in(self, login: str, password: str, address: str) -> Session | None:
        """A new session, or None for a wrong log-in; Throttled, with no password
        checked, when this login was tried too often lately from this address, or from
        everywhere (the gates: ``_admit``)."""
        login = login.strip().lower()[:320]
        address = address[:64]
        now = self.clock()
        known = await self._admit(login, address, now)
        async with self.database.transaction() as session:
            row = await self._row(session, login)
        # Off the event loop: argon2id takes most of a second of CPU, and 30 guesses
        # at once would hold every other request behind them.
        hashed = row.password_hash if row is not None else _dummy_hash()
        ok = await asyncio.to_thread(_verify, hashed, password)
        async with self.database.transaction() as session:
            if row is None or not ok or row.disabled:
                await session.execute(
                    login_failures.insert().values(login=login, address=address, at=now)
                )
                return None
            return await self._open_session(session, row, password, address, known, now)

    async def _admit(self, login: str, address: str, now: datetime) -> bool:
        """Count this attempt at its gates, or raise Throttled: the check and the count
        in one transaction, each gate's row locked by its upsert, so that concurrent
        attempts pass one after the other and no more than the gate allows. Whether
        the address is one the account's owner logged in from lately."""
        async with self.database.transaction() as session:
            pair = await _pass_gate(session, login, address, PAIR_GATE, now)
            known = pair.succeeded_at is not None and as_utc(pair.succeeded_at) > (
                now - KNOWN_ADDRESS
            )
            if not known:
                # Raised here, the pair's count is rolled back with it.
                await _pass_gate(session, login, ANY_ADDRESS, ACCOUNT_GATE, now)
        await self._prune(now)
        return known

    async def _open_session(
        self,
        session: AsyncSession,
        row: Any,
        password: str,
        address: str,
        known: bool,
        now: datetime,
    ) -> Session:
        if _hasher.check_needs_rehash(row.password_hash):
            await session.execute(
                accounts.update()
                .where(accounts.c.id == row.id)
                .values(password_hash=hash_password(password))
            )
        # The owner got in from here: this pair starts afresh, and the address is known.
        attempts = login_attempts.c
        await session.execute(
            login_attempts.update()
            .where(attempts.login == row.login, attempts.address == address)
            .values(attempts=0, open_at=now, succeeded_at=now)
        )
        if not known:  # the account-wide count takes back this attempt, not a guess
            await session.execute(
                login_attempts.update()
                .where(
                    attempts.login == row.login,
                    attempts.address == ANY_ADDRESS,
                    attempts.attempts > 0,
                )
                .values(attempts=attempts.attempts - 1)
            )
        token = secrets.token_urlsafe(32)  # 256 bits
        csrf = secrets.token_urlsafe(32)
        await session.execute(
            sessions.insert().values(
                id=_digest(token),
                account_id=row.id,
                csrf=csrf,
                created_at=now,
                last_seen_at=now,
                expires_at=now + ABSOLUTE,
                revoked_at=None,
            )
        )
        return Session(token, _account(row), csrf)

    async def _prune(self, now: datetime) -> None:
        """Forget gates nobody tried for a while (a guesser's made-up logins), at most
        every PRUNE_EVERY."""
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        attempts = login_attempts.c
        async with self.database.transaction() as session:
            await session.execute(
                login_attempts.delete().where(
                    attempts.last_at < now - FORGET_AFTER,
                    attempts.open_at < now,
                    sa.or_(
                        attempts.succeeded_at.is_(None),
                        attempts.succeeded_at < now - KNOWN_ADDRESS,
                    ),
                )
            )

    async def session(
        self, token: str | None, now: datetime | None = None, *, touch: bool = True
    ) -> Session | None:
        """The live session the cookie names, or None: unknown, revoked, idle too long,
        past its absolute expiry, or its account disabled. ``touch``: a person's own
        request, which keeps the session from going idle; the live stream's checks
        and the page's automatic refreshes do not."""
        if not token or len(token) > 100:
            return None
        now = now or self.clock()
        async with self.database.transaction() as session:
            found = (
                await session.execute(
                    sa.select(
                        sessions.c.csrf,
                        sessions.c.last_seen_at,
                        sessions.c.expires_at,
                        sessions.c.revoked_at,
                        *accounts.c,
                    )
                    .join(accounts, accounts.c.id == sessions.c.account_id)
                    .where(sessions.c.id == _digest(token))
                )
            ).first()
            if found is None or found.revoked_at is not None or found.disabled:
                return None
            last_seen = as_utc(found.last_seen_at)
            if as_utc(found.expires_at) <= now or last_seen + IDLE <= now:
                return None
            if touch and now - last_seen >= TOUCH_EVERY:
                await session.execute(
                    sessions.update()
                    .where(sessions.c.id == _digest(token))
                    .values(last_seen_at=now)
                )
            return Session(token, _account(found), found.csrf)

    async def log_out(self, token: str) -> None:
        async with self.database.transaction() as session:
            await session.execute(
                sessions.update()
                .where(sessions.c.id == _digest(token), sessions.c.revoked_at.is_(None))
                .values(revoked_at=self.clock())
            )

    # -- audit -----------------------------------------------------------------------

    async def record(
        self,
        account: Account,
        action: str,
        *,
        region: str | None,
        centre_id: str | None = None,
        referral_id: str | None = None,
        detail: str = "",
        event_id: str | None = None,
    ) -> None:
        async with self.database.transaction() as session:
            await session.execute(
                audit.insert().values(
                    at=self.clock(),
                    login=account.login,
                    role=account.role.value,
                    region=region,
                    action=action,
                    centre_id=centre_id,
                    referral_id=referral_id,
                    detail=detail[:2000],
                    event_id=event_id,
                )
            )

    async def audit_of_region(self, region: str, limit: int = 200) -> list[AuditEntry]:
        async with self.database.transaction() as session:
            rows = (
                await session.execute(
                    audit.select()
                    .where(audit.c.region == region)
                    .order_by(audit.c.at.desc(), audit.c.id.desc())
                    .limit(limit)
                )
            ).all()
        return [
            AuditEntry(
                as_utc(r.at), r.login, r.role, r.action, r.centre_id, r.referral_id, r.detail
            )
            for r in rows
        ]

    # -- helpers ---------------------------------------------------------------------

    @staticmethod
    async def _row(session: AsyncSession, login: str) -> Any:
        return (await session.execute(accounts.select().where(accounts.c.login == login))).first()

    async def _existing(self, session: AsyncSession, login: str) -> Any:
        row = await self._row(session, login.strip().lower())
        if row is None:
            raise AccountError(f"aucun compte {login}")
        return row

    @staticmethod
    async def _revoke_all(session: AsyncSession, account_id: int, now: datetime) -> int:
        result = await session.execute(
            sessions.update()
            .where(sessions.c.account_id == account_id, sessions.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return int(getattr(result, "rowcount", 0) or 0)


_TIME = sa.DateTime(timezone=True)


def _gate_statement(insert: Any) -> Any:
    """Count one attempt at a gate, if it is open: an upsert whose update holds only
    while ``open_at`` has passed, returning the row it counted (none: the gate is
    shut). Built once per dialect."""
    c = login_attempts.c
    statement = insert(login_attempts).values(
        login=sa.bindparam("login"),
        address=sa.bindparam("address"),
        attempts=1,
        last_at=sa.bindparam("now", type_=_TIME),
        open_at=sa.bindparam("now", type_=_TIME),
        succeeded_at=None,
    )
    return statement.on_conflict_do_update(
        index_elements=[c.login, c.address],
        set_={
            "attempts": sa.case(
                (c.last_at < sa.bindparam("forgotten", type_=_TIME), 1), else_=c.attempts + 1
            ),
            "last_at": statement.excluded.last_at,
        },
        where=c.open_at <= statement.excluded.open_at,
    ).returning(c.attempts, c.succeeded_at)


_GATE = {False: _gate_statement(sqlite.insert), True: _gate_statement(postgresql.insert)}


async def _pass_gate(
    session: AsyncSession, login: str, address: str, gate: Gate, now: datetime
) -> Any:
    """This attempt counted at the gate of (login, address), which it then shuts for
    ``gate.delay``; Throttled while it is shut. The upsert locks the row until the
    transaction ends: a concurrent attempt reads the gate as this one leaves it."""
    key = {"login": login, "address": address}
    counted = (
        await session.execute(
            _GATE[session.get_bind().dialect.name == "postgresql"],
            {**key, "now": now, "forgotten": now - FORGET_AFTER},
        )
    ).first()
    c = login_attempts.c
    where = (c.login == login, c.address == address)
    if counted is None:
        open_at = (await session.execute(sa.select(c.open_at).where(*where))).scalar_one()
        raise Throttled(max(1, math.ceil((as_utc(open_at) - now).total_seconds())))
    shut = gate.delay(counted.attempts)
    if shut:
        await session.execute(login_attempts.update().where(*where).values(open_at=now + shut))
    return counted


def _verify(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"mot de passe trop court ({MIN_PASSWORD} caractères au moins)")


async def open_store(settings: Settings) -> AccountStore:
    """The console's store, its tables migrated to the latest revision."""
    store = AccountStore.for_settings(settings)
    await store.migrate()
    return store


async def demo_accounts(
    settings: Settings, people: list[tuple[str, str, Role, str]]
) -> list[tuple[Account, str]]:
    """Accounts for a demo (login, name, role, actor), each with a fresh password: an
    existing one (a demo run again on the same data) has its password reset."""
    store = await open_store(settings)
    try:
        made = []
        for login, name, role, actor in people:
            existing = await store.get(login)
            if existing is None:
                made.append(await store.add(login, name, role, actor))
            else:
                made.append((existing, await store.reset(login)))
        return made
    finally:
        await store.close()
