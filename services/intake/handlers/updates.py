"""A referral corrected by its referrer (``referral.updated`` on the broker door, issue
36: Centre 15 relays the LRM's RS-EDA-MAJ): the patient's name and birth date replace
intake's; a new commune is kept, and put on the bus as ``patient.relocated`` (the
commune alone, under the referral's pseudonym), whence the scheduler may book nearer."""

from __future__ import annotations

from dataclasses import replace
from functools import cached_property

import structlog

from services.intake.domain import senders
from services.intake.domain.correction import Kept, correction
from services.intake.handlers.identities import Vault
from services.intake.store import keys, referrals
from shared.consumer import Delivery
from shared.events import PatientContact, PatientRelocated, ReferralUpdated
from shared.senders import ActorKind, Sender, SenderRefused
from shared.settings import Settings
from shared.territory import NATIONAL, Scope, Territories

log = structlog.get_logger(__name__)


def sender_scope(territories: Territories, sender: Sender | None) -> Scope | None:
    """A SAMU's territory (the national Centre 15's: all); None for a referrer, an
    operator in its own name, or no broker (in-memory)."""
    if sender is None or sender.trusted or sender.kind is not ActorKind.CENTRE_15:
        return None
    scope = territories.scope(sender.actor or NATIONAL)
    return scope or Scope(NATIONAL, frozenset(), national=True)


class Updates:
    settings: Settings  # the submissions' (IntakeHandlers is both)

    @cached_property
    def vault(self) -> Vault:
        """The identity's keys, one per process (``Vault.of``; the submissions' own when
        IntakeHandlers is both)."""
        return Vault.of(self.settings)

    async def on_updated(self, delivery: Delivery) -> None:
        """The sender's own referral only (another's is refused as unknown is: the
        same answer, nothing told); applied, then the commune on the bus."""
        update = delivery.payload_as(ReferralUpdated)
        session = delivery.session
        owner = await referrals.owner(session, update.referral_id)
        sender = delivery.sender
        if owner is None:
            if sender is None or sender.trusted:
                raise LookupError(f"update of unknown referral {update.referral_id}")
            raise SenderRefused("unknown_referral", "no such referral", "referral_id")
        if sender is not None and not sender.trusted:
            senders.check_owner(sender, *owner)
        await referrals.lock(session, update.referral_id)
        row = await referrals.referral(session, update.referral_id)
        sealed = await referrals.identity(session, update.referral_id)
        assert row is not None and sealed is not None  # the owner's row, locked
        person = await self.vault.person(session, sealed)
        kept = Kept(person.first_name, person.last_name, person.birth_date, row.commune_insee)
        change = correction(kept, update, sender_scope(Territories.of(self.settings), sender))
        if change.identity is not None:
            first_name, last_name, birth_date = change.identity
            corrected = replace(
                person, first_name=first_name, last_name=last_name, birth_date=birth_date
            )
            # The whole row re-sealed under the current key: one key per row.
            values = await self.vault.sealed(session, update.referral_id, corrected)
            await keys.reseal(session, update.referral_id, values)
            # The notifier keeps the only other copy of the names (its notices say them).
            await delivery.emit(
                PatientContact(
                    referral_id=update.referral_id,
                    patient_ref=row.patient_ref,
                    first_name=first_name,
                    last_name=last_name,
                    corrected=True,
                ),
                correlation_id=update.referral_id,
            )
        if change.commune is not None:
            insee, departement = change.commune
            await referrals.relocate(session, update.referral_id, insee, departement)
            await delivery.emit(
                PatientRelocated(
                    referral_id=update.referral_id,
                    patient_ref=row.patient_ref,
                    commune_insee=insee,
                    departement=departement,
                    previous_commune_insee=row.commune_insee,
                ),
                correlation_id=update.referral_id,
            )
        # Which fields changed, never their values.
        log.info(
            "referral updated",
            referral_id=update.referral_id,
            identity=change.identity is not None,
            relocated=change.commune is not None,
        )
