"""Who is still told of a referral whose patient restricted its processing (GDPR
article 18, issue 34): what care and the law need goes on (the centre that receives
the patient, Centre 15 for an escalation, the ARS's on-call); the patient and their
referrer are told nothing more. Pure."""

from __future__ import annotations

from shared.events import RecipientKind

STILL_TOLD = frozenset({RecipientKind.CENTRE, RecipientKind.CENTRE_15, RecipientKind.ONCALL})


def may_tell(recipient: RecipientKind, restricted: bool) -> bool:
    return not restricted or recipient in STILL_TOLD


# Why a notice pending when the restriction came is not sent (its ``last_error``).
WITHHELD_REASON = "processing restricted by the patient (GDPR art. 18): not sent"


def withheld(recipient_kind: str) -> bool:
    """Whether a notice to this kind of recipient is withheld once its referral is
    restricted (an unknown kind is: nothing is sent against an unknown rule)."""
    try:
        return not may_tell(RecipientKind(recipient_kind), True)
    except ValueError:
        return True
