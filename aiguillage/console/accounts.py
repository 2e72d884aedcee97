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

import functools
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
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
FAILURE_WINDOW = timedelta(minutes=15)
MAX_FAILURES = 5

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

login_failures = sa.Table(
    "console_login_failures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("login", sa.String(320), nullable=False, index=True),
    sa.Column("address", sa.String(64), nullable=False, index=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
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
    elif role in (Role.CENTRE, Role.REFERRER):
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

    def __init__(self, url: str) -> None:
        self.database = Database(url)

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
                .values(password_hash=hash_password(password), disabled=False, updated_at=now)
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
                .values(disabled=True, updated_at=now)
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

    async def retry_after(self, login: str, address: str, now: datetime | None = None) -> int:
        """Seconds until this login and this address may try again; 0: now."""
        now = now or utcnow()
        since = now - FAILURE_WINDOW
        waits = []
        async with self.database.transaction() as session:
            for column, value in (
                (login_failures.c.login, login.strip().lower()),
                (login_failures.c.address, address),
            ):
                recent = (
                    await session.execute(
                        sa.select(login_failures.c.at)
                        .where(column == value, login_failures.c.at > since)
                        .order_by(login_failures.c.at.desc())
                        .limit(MAX_FAILURES)
                    )
                ).scalars()
                times = [as_utc(t) for t in recent]
                if len(times) >= MAX_FAILURES:
                    # Free again when the oldest of the last MAX_FAILURES leaves the window.
                    waits.append(int((min(times) + FAILURE_WINDOW - now).total_seconds()) + 1)
        return max(waits, default=0)

    async def log_in(self, login: str, password: str, address: str) -> Session | None:
        """A new session, or None (and the failure counted) for a wrong log-in."""
        login = login.strip().lower()[:320]
        now = utcnow()
        async with self.database.transaction() as session:
            row = await self._row(session, login)
            ok = _verify(row.password_hash if row is not None else _dummy_hash(), password)
            if row is None or not ok or row.disabled:
                await session.execute(
                    login_failures.insert().values(login=login, address=address[:64], at=now)
                )
                return None
            if _hasher.check_needs_rehash(row.password_hash):
                await session.execute(
                    accounts.update()
                    .where(accounts.c.id == row.id)
                    .values(password_hash=hash_password(password))
                )
            # A person who gets in is no longer being guessed at under this login.
            await session.execute(login_failures.delete().where(login_failures.c.login == login))
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

    async def session(self, token: str | None, now: datetime | None = None) -> Session | None:
        """The live session the cookie names (touched), or None: unknown, revoked,
        idle too long, past its absolute expiry, or its account disabled."""
        if not token or len(token) > 100:
            return None
        now = now or utcnow()
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
            if now - last_seen >= TOUCH_EVERY:
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
                .values(revoked_at=utcnow())
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
                    at=utcnow(),
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
