"""Who sent a message that came through the ingress: the AMQP user that published it.

RabbitMQ refuses a message whose ``user_id`` property differs from the user of the
connection that published it, so ``user_id`` is the one thing a message says about
its sender that can be believed. A door derives the actor from it, by the user names
that ``aiguillage broker provision`` gives (shared/provisioning.py):

- ``samu-<dép.>``, ``ars-<region>``, ``referrer-<id>``, ``centre-<id>`` (plus the
  deployment's suffix): the outside actors, each allowed its own part only (a SAMU:
  Centre 15 for its départements, shared.territory; an ARS: its region's centres,
  shared.regions); ``centre_15``, the national Centre 15, only where the deployment
  enables it;
- a service's user where that service's HTTP API is an actor's door
  (``contracts.HTTP_DOORS``): it speaks in the name of the actor its token
  authenticated, named in the ``x-aiguillage-actor`` header, of the kinds it is a door
  for only;
- an operator's user (``AIGUILLAGE_BROKER_OPERATORS``: the broker's administrators,
  who may configure anything anyway): trusted, in its own name or in the actor's it
  names. Development (``guest``) and the commands an operator runs go this way.

Anything else (no ``user_id``, an unknown user, a service outside its doors) is refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import structlog

from shared.contracts import HTTP_DOORS, actor_may_send
from shared.regions import ARS_PREFIX, region_of_actor
from shared.territory import NATIONAL_ACTOR, SAMU_PREFIX, Territories
from shared.topology import centre_reply_key

log = structlog.get_logger(__name__)

ACTOR_HEADER = "x-aiguillage-actor"
# The national Centre 15's reply key (reply.centre-15.*); a SAMU's is its name
# (reply.samu-35.*).
CENTRE_15_KEY = "centre-15"

_WORD = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ActorKind(StrEnum):
    OPERATOR = "operator"
    CENTRE_15 = "centre_15"
    REFERRER = "referrer"
    ARS = "ars"
    CENTRE = "centre"


@dataclass(frozen=True, slots=True)
class Sender:
    """The actor a message is from, as proven by the broker user that published it."""

    user: str  # the AMQP user_id, as the broker checked it
    kind: ActorKind
    actor: str = ""  # the referrer's or the centre's id, the SAMU, the ARS's region
    via: str | None = None  # the door (a service, an operator) that spoke in its name

    @property
    def name(self) -> str:
        """The actor as the provisioning names it: ``referrer-<id>``, ``centre-<id>``..."""
        if self.kind in (ActorKind.REFERRER, ActorKind.CENTRE):
            return f"{self.kind.value}-{self.actor}"
        if self.kind is ActorKind.CENTRE_15 and self.actor:
            return self.actor  # samu-35
        if self.kind is ActorKind.ARS:
            return f"{ARS_PREFIX}{self.actor}"  # ars-53
        return self.user if self.kind is ActorKind.OPERATOR else self.kind.value

    @property
    def reply_key(self) -> str | None:
        """Where this sender is answered; None for an operator (its message says)."""
        if self.kind is ActorKind.REFERRER:
            return self.actor
        if self.kind is ActorKind.CENTRE_15:
            return self.actor or CENTRE_15_KEY
        if self.kind is ActorKind.CENTRE:
            return centre_reply_key(self.actor)
        if self.kind is ActorKind.ARS:
            return f"{ARS_PREFIX}{self.actor}"  # reply.ars-53.*: its region's answers only
        return None

    @property
    def trusted(self) -> bool:
        """An operator in its own name: what the message claims is believed."""
        return self.kind is ActorKind.OPERATOR

    def may_send(self, event_type: str) -> bool:
        return self.trusted or event_type in actor_may_send(self.kind.value)

    def log_fields(self) -> dict[str, Any]:
        return {"sender_user": self.user, "sender": self.name, "via": self.via}


class SenderRefused(Exception):
    """A door's refusal: the message is answered with an error, recorded, never applied.

    ``field`` names what disagreed (never its value: the cause travels to the sender,
    the logs and the record)."""

    def __init__(self, code: str, cause: str, field: str | None = None) -> None:
        super().__init__(cause)
        self.code = code
        self.cause = cause
        self.field = field


class SenderThrottled(SenderRefused):
    """A refusal that holds for ``retry_after`` seconds (a quota spent until its window
    ends). ``whole_sender``: it holds for every message of the sender (the quota is the
    sender's own), so the door refuses them unread meanwhile (``shared.door_guard``)."""

    def __init__(
        self,
        code: str,
        cause: str,
        retry_after: int,
        field: str | None = None,
        *,
        whole_sender: bool = False,
    ) -> None:
        super().__init__(code, cause, field)
        self.retry_after = retry_after
        self.whole_sender = whole_sender

    def again(self, retry_after: int) -> SenderThrottled:
        """The same refusal, ``retry_after`` seconds before it ends."""
        return SenderThrottled(
            self.code, self.cause, retry_after, self.field, whole_sender=self.whole_sender
        )


@dataclass(frozen=True, slots=True)
class SenderPolicy:
    """How user names map to actors in this deployment."""

    operators: frozenset[str]
    suffix: str = ""
    services: frozenset[str] = frozenset(("intake", "regulation", "scheduler", "notifier"))
    territories: Territories = field(default_factory=Territories)

    def resolve(self, user_id: str | None, headers: Mapping[str, Any] | None) -> Sender:
        if not user_id:
            raise SenderRefused(
                "sender_unknown", "the message has no user_id: the sender cannot be proven"
            )
        claimed = (headers or {}).get(ACTOR_HEADER)
        if user_id in self.operators:
            if claimed is None:
                return Sender(user_id, ActorKind.OPERATOR)
            return self._actor(str(claimed), user_id, via=user_id)
        base = self._without_suffix(user_id)
        if base is None:
            raise SenderRefused("sender_unknown", "the user is not one of this deployment's")
        if base in self.services:
            if claimed is None:
                raise SenderRefused(
                    "sender_not_allowed", "a service publishes on the ingress only as a door"
                )
            sender = self._actor(str(claimed), user_id, via=base)
            if sender.kind.value not in HTTP_DOORS.get(base, ()):
                raise SenderRefused(
                    "sender_not_allowed", f"{base} is not a door for {sender.kind.value}"
                )
            return sender
        if claimed is not None and str(claimed) != base:
            raise SenderRefused(
                "sender_inconsistent", "the actor header names another actor", ACTOR_HEADER
            )
        return self._actor(base, user_id, via=None)

    def _without_suffix(self, user: str) -> str | None:
        if not self.suffix:
            return user
        return user[: -len(self.suffix)] if user.endswith(self.suffix) else None

    def _actor(self, name: str, user: str, via: str | None) -> Sender:
        if name == NATIONAL_ACTOR:
            # An operator is trusted to act for it; its own user only where enabled.
            if via is None and not self.territories.national:
                raise SenderRefused(
                    "sender_unknown", "the national Centre 15 is not enabled in this deployment"
                )
            log.warning("national centre 15 on the broker", sender_user=user, via=via)
            return Sender(user, ActorKind.CENTRE_15, via=via)
        if name.startswith(SAMU_PREFIX):
            if self.territories.departements(name) is None:
                raise SenderRefused("sender_unknown", "the user names no SAMU of this deployment")
            return Sender(user, ActorKind.CENTRE_15, name, via=via)
        if name.startswith(ARS_PREFIX):
            # An ARS is its region's: what names none (the former ``ars``) acts on nothing.
            region = region_of_actor(name)
            if region is None:
                raise SenderRefused("sender_unknown", "the user names no region of an ARS")
            return Sender(user, ActorKind.ARS, region, via=via)
        for kind in (ActorKind.REFERRER, ActorKind.CENTRE):
            prefix = f"{kind.value}-"
            if name.startswith(prefix) and _WORD.match(name[len(prefix) :]):
                return Sender(user, kind, name[len(prefix) :], via=via)
        raise SenderRefused("sender_unknown", "the user names no actor of this deployment")
