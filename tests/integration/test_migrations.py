"""Every service's migrations run on SQLite and on PostgreSQL, to the same tables."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text

from shared.db import Database
from shared.migrations import upgrade

SERVICES = ["intake", "regulation", "scheduler", "notifier"]


async def _tables(database: Database) -> set[str]:
    async with database.engine.connect() as connection:
        return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))


@pytest.mark.parametrize("service", SERVICES)
async def test_migrations_on_sqlite_and_postgres(service: str, tmp_path: Path, postgres) -> None:
    from importlib import import_module

    metadata = import_module(f"services.{service}.store.tables").metadata
    expected = set(metadata.tables) | {"outbox", "inbox", "refusals", "purges", "alembic_version"}
    for url in [f"sqlite+aiosqlite:///{tmp_path / service}.db", await postgres.create(service)]:
        database = Database(url)
        try:
            await upgrade(database, f"services.{service}:migrations")
            await upgrade(database, f"services.{service}:migrations")  # twice: a no-op
            assert await _tables(database) == expected, url
        finally:
            await database.dispose()


# An appointment booked before test eligibility was kept: each service's row as it was.
_BEFORE_TEST_ELIGIBLE = {
    "scheduler": (
        "0003",
        "appointments",
        'INSERT INTO appointments (id, referral_id, patient_ref, centre_id, start, "end", '
        "box, priority, distance_km, status, created_at) VALUES ('a-1', 'r-1', 'p-1', 'c-1', "
        ":t, :t, 1, 'routine', 1.0, 'booked', :t)",
    ),
    "notifier": (
        "0004",
        "centre_appointments",
        "INSERT INTO centre_appointments (appointment_id, centre_id, referral_id, patient_ref, "
        "start, \"end\", box, priority, status) VALUES ('a-1', 'c-1', 'r-1', 'p-1', :t, :t, 1, "
        "'routine', 'booked')",
    ),
}


@pytest.mark.parametrize("service", sorted(_BEFORE_TEST_ELIGIBLE))
async def test_appointments_from_before_test_eligibility_read_false(
    service: str, tmp_path: Path, postgres
) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import text

    revision, table, insert = _BEFORE_TEST_ELIGIBLE[service]
    location = f"services.{service}:migrations"
    for url in [f"sqlite+aiosqlite:///{tmp_path / service}.db", await postgres.create(service)]:
        database = Database(url)
        try:
            await upgrade(database, location, revision)
            async with database.engine.begin() as connection:
                await connection.execute(text(insert), {"t": datetime.now(UTC)})
            await upgrade(database, location)
            async with database.engine.connect() as connection:
                found = (await connection.execute(text(f"SELECT test_eligible FROM {table}"))).all()
            assert [bool(row[0]) for row in found] == [False], url
        finally:
            await database.dispose()


async def test_identities_kept_in_clear_before_sealing_are_sealed_in_batches(
    tmp_path: Path, postgres
) -> None:
    """The expand step (intake 0008): a row written in clear by the release before reads
    as it did, then `aiguillage keys seal` seals it and empties the plain columns."""
    from services.intake import Vault, identities_by_key, seal_identities
    from services.intake.store.tables import identities
    from shared.settings import Settings

    vault = Vault.of(Settings())
    for url in [f"sqlite+aiosqlite:///{tmp_path / 'intake'}.db", await postgres.create("seal")]:
        database = Database(url)
        try:
            await upgrade(database, "services.intake:migrations", "0007")
            async with database.transaction() as session:
                for n in range(7):
                    await session.execute(
                        text(
                            "INSERT INTO referrals (id, referrer_kind, referrer_id, reference, "
                            "fingerprint, patient_ref, commune_insee, departement, status, "
                            "detail, received_at, updated_at) VALUES (:id, 'gp', 'g', :id, "
                            "'f', 'p', '35238', '35', 'received', '{}', :t, :t)"
                        ),
                        {"id": f"r-{n}", "t": datetime(2026, 12, 1, tzinfo=UTC)},
                    )
                    await session.execute(
                        text(
                            "INSERT INTO identities (referral_id, first_name, last_name, "
                            "birth_date, sex, nir, phone) VALUES (:id, 'Anselme', 'Clairvoyant', "
                            "'1970-01-02', 'male', NULL, '+33611223344')"
                        ),
                        {"id": f"r-{n}"},
                    )
            await upgrade(database, "services.intake:migrations")
            async with database.transaction() as session:
                row = (await session.execute(select(identities))).first()
                assert row is not None
                assert (await vault.person(session, row)).last_name == "Clairvoyant"
            assert await seal_identities(database, vault, batch=3) == 7
            async with database.transaction() as session:
                [(key_id, count)] = (await identities_by_key(session)).items()
                assert key_id is not None and count == 7
                rows = (await session.execute(select(identities))).all()
                assert {r.last_name for r in rows} == {None} and {r.phone for r in rows} == {None}
                person = await vault.person(session, rows[0])
                assert (person.last_name, person.phone) == ("Clairvoyant", "+33611223344")
            assert await seal_identities(database, vault) == 0  # resumable: nothing left
        finally:
            await database.dispose()


async def test_contacts_kept_in_clear_before_sealing_are_sealed_in_batches(
    tmp_path: Path, postgres
) -> None:
    """The expand step (notifier 0014): a contact written in clear by the release before
    reads as it did (a centre's day list, a notice), then `aiguillage keys seal
    --service notifier` seals it and empties the plain columns."""
    from services.notifier import ContactVault, contacts_by_key, seal_contacts
    from services.notifier.store.tables import contacts
    from shared.settings import Settings

    vault = ContactVault.of(Settings())
    for url in [f"sqlite+aiosqlite:///{tmp_path / 'notifier'}.db", await postgres.create("sealc")]:
        database = Database(url)
        try:
            await upgrade(database, "services.notifier:migrations", "0013")
            async with database.transaction() as session:
                for n in range(5):
                    await session.execute(
                        text(
                            "INSERT INTO contacts (referral_id, patient_ref, first_name, "
                            "last_name, phone, email, sms_consent) VALUES (:id, 'p', "
                            "'Anselme', 'Clairvoyant', '+33611223344', 'a.c@exemple.fr', true)"
                        ),
                        {"id": f"r-{n}"},
                    )
            await upgrade(database, "services.notifier:migrations")
            async with database.transaction() as session:
                row = (await session.execute(select(contacts))).first()
                assert row is not None
                assert (await vault.contact(session, row))["last_name"] == "Clairvoyant"
            assert await seal_contacts(database, vault, batch=2) == 5
            async with database.transaction() as session:
                [(key_id, count)] = (await contacts_by_key(session)).items()
                assert key_id is not None and count == 5
                rows = (await session.execute(select(contacts))).all()
                assert {r.last_name for r in rows} == {None} and {r.email for r in rows} == {None}
                assert await vault.contact(session, rows[0]) == {
                    "first_name": "Anselme",
                    "last_name": "Clairvoyant",
                    "phone": "+33611223344",
                    "email": "a.c@exemple.fr",
                }
            assert await seal_contacts(database, vault) == 0  # resumable: nothing left
        finally:
            await database.dispose()
