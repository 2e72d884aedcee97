"""Who may submit, and cancel, in whose name; and whom a submission asks to be
answered, read from its raw data (a refused submission may not fit the schema).

An outside actor on the broker (a referrer, a SAMU) speaks for itself alone: the
referrer its submission names must be the sender, and it is answered on the sender's
own key. Anything else is refused (``SenderRefused``), never applied. Plain functions:
no broker, no database.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from shared.events import CancelledBy, ReferrerKind, ReferrerRef
from shared.senders import ActorKind, Sender, SenderRefused

_REPLY_TO = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def reply_to(data: dict[str, Any]) -> str | None:
    """The reply key a submission names, when it is a plausible one."""
    referrer = data.get("referrer")
    value = referrer.get("reply_to") if isinstance(referrer, dict) else None
    return value if isinstance(value, str) and _REPLY_TO.match(value) else None


def referrer_ref(data: dict[str, Any]) -> ReferrerRef | None:
    """The referrer a submission names, when it validates on its own."""
    referrer = data.get("referrer")
    if not isinstance(referrer, dict):
        return None
    try:
        return ReferrerRef.model_validate(
            {k: v for k, v in referrer.items() if k in ReferrerRef.model_fields}
        )
    except ValidationError:
        return None


def reference(data: dict[str, Any]) -> str | None:
    """The submission's reference, cut to what the tables keep."""
    value = data.get("reference")
    return value[:100] if isinstance(value, str) and value else None


def named_referrer(data: dict[str, Any]) -> tuple[str, str] | None:
    """The (kind, identifier) a submission names, if both are plausible: otherwise the
    validation refuses it, with every reason."""
    referrer = data.get("referrer")
    if not isinstance(referrer, dict):
        return None
    kind, identifier = referrer.get("kind"), referrer.get("identifier")
    kinds = {k.value for k in ReferrerKind}
    if kind in kinds and isinstance(identifier, str) and 0 < len(identifier) <= 64:
        return str(kind), identifier
    return None


def speaks_for_itself(sender: Sender | None) -> bool:
    """Whether every submission of this sender is in one name, its own (``in_own_name``):
    a referrer, a SAMU. Not an operator, nor the national Centre 15 (its regulators')."""
    return sender is not None and not sender.trusted and bool(sender.actor)


def in_own_name(sender: Sender, data: dict[str, Any]) -> dict[str, Any]:
    """A submission from an outside actor speaks for that actor alone: its referrer must
    be the sender, and it is answered on the sender's own key whatever it names.
    Anything else is refused (``sender_inconsistent``), never applied."""
    referrer = data.get("referrer")
    if not isinstance(referrer, dict):
        # Validation refuses it (the referrer is missing), answered on the sender's key.
        return {**data, "referrer": {"reply_to": sender.reply_key}}
    kind, identifier = referrer.get("kind"), referrer.get("identifier")
    if sender.kind is ActorKind.CENTRE_15:
        if kind != ActorKind.CENTRE_15.value:
            raise SenderRefused(
                "sender_inconsistent", "Centre 15 refers as Centre 15", "referrer.kind"
            )
        # A SAMU refers in its own name (the national Centre 15 names its regulators).
        if sender.actor and identifier != sender.actor:
            raise SenderRefused(
                "sender_inconsistent", "a SAMU refers in its own name", "referrer.identifier"
            )
    elif sender.kind is ActorKind.REFERRER:
        if kind == ActorKind.CENTRE_15.value:
            raise SenderRefused(
                "sender_inconsistent", "a referrer does not refer as Centre 15", "referrer.kind"
            )
        if identifier != sender.actor:
            raise SenderRefused(
                "sender_inconsistent",
                "the referrer named is not the sender",
                "referrer.identifier",
            )
    else:
        raise SenderRefused("sender_not_allowed", "only referrers and Centre 15 refer", "type")
    named = referrer.get("reply_to")
    if named is not None and named != sender.reply_key:
        raise SenderRefused(
            "sender_inconsistent", "a referrer is answered on its own key only", "referrer.reply_to"
        )
    return {**data, "referrer": {**referrer, "reply_to": sender.reply_key}}


def check_owner(sender: Sender, referrer_kind: str | None, referrer_id: str | None) -> None:
    """A referrer acts on its own referrals only; a SAMU on its own, the national
    Centre 15 on Centre 15's."""
    if sender.kind is ActorKind.CENTRE_15:
        own = referrer_kind == ActorKind.CENTRE_15.value and (
            not sender.actor or referrer_id == sender.actor
        )
    elif sender.kind is ActorKind.REFERRER:
        own = referrer_kind != ActorKind.CENTRE_15.value and referrer_id == sender.actor
    else:
        own = False
    if not own:
        raise SenderRefused(
            "sender_inconsistent", "the referral is not the sender's", "referral_id"
        )


def check_cancellation(
    sender: Sender, owner: tuple[str | None, str | None], cancelled_by: CancelledBy
) -> None:
    """An outside actor cancels its own referrals only, as itself (or as the patient it
    relays): only Centre 15 cancels as another (a regulator, the service)."""
    check_owner(sender, *owner)
    if cancelled_by not in (CancelledBy.REFERRER, CancelledBy.PATIENT) and (
        sender.kind is not ActorKind.CENTRE_15
    ):
        raise SenderRefused("sender_inconsistent", "a referrer cancels as itself", "cancelled_by")
