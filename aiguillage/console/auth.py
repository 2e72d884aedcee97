"""Who is logged in to the console: a person, and the actor they act for.

A person logs in with their own account (aiguillage.console.people: argon2id
passwords, server-side sessions); the console then speaks to the services as the actor
the account acts for (a centre, the ARS, Centre 15), with that actor's bearer token, so
that each service still decides what may be seen. A regulator's token names their SAMU
then the person (``samu-35:<login>``): the services show the SAMU its départements only
(shared.territory), and regulation records who decided from the token.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiguillage.console.people import Account
from shared.auth import Keys, Role, issue_token
from shared.settings import ServiceName

SESSION_COOKIE = "aiguillage_console"
# Before log-in: the double-submit token of the log-in form (there is no session yet).
LOGIN_CSRF_COOKIE = "aiguillage_console_connexion"

ROLE_LABELS = {
    Role.ARS: "ARS",
    Role.CENTRE: "Centre",
    Role.CENTRE_15: "Centre 15",
    Role.REFERRER: "Médecin adresseur",
    Role.DPO: "Délégué à la protection des données",
}
# The roles with pages in the console.
CONSOLE_ROLES = (Role.ARS, Role.CENTRE, Role.CENTRE_15, Role.REFERRER, Role.DPO)


@dataclass(frozen=True)
class Actor:
    role: Role
    subject: str
    login: str = ""  # the person logged in, "" for an actor without one (tests, jobs)
    name: str = ""
    acts_for: str = ""  # the account's actor: a region code, a centre, samu-<dép.>

    @property
    def label(self) -> str:
        who = self.acts_for or self.subject
        if self.role is Role.ARS:
            who = f"région {who}"
        role = f"{ROLE_LABELS[self.role]} {who}"
        return f"{self.name} — {role}" if self.name else role

    @property
    def source(self) -> str:
        """The envelope's ``source`` of what this person publishes."""
        return f"console:{self.login}" if self.login else "console"

    def token(self, keys: Keys, service: ServiceName | str) -> str:
        """The bearer token the console presents to ``service`` on this actor's behalf
        (a token for that service only, so one leaked from a call opens no other)."""
        return issue_token(keys, self.role, self.subject, service)


def actor_of_account(account: Account) -> Actor:
    """The actor a person acts as towards the services."""
    # A regulator acts for their SAMU and decides in their own name (the token's subject
    # names both: the territory, then the regulator_id); the others act for their
    # centre, region or referrer.
    # The DPO reads in their own name (the log of identity reads names the reader).
    by_person = account.role in (Role.CENTRE_15, Role.DPO)
    subject = f"{account.actor}:{account.login}" if by_person else account.actor
    return Actor(account.role, subject, account.login, account.name, account.actor)
