"""Who is still told of a referral whose patient restricted its processing (GDPR
article 18, issue 34): what care and the law need goes on (the centre that receives
the patient, Centre 15 for an escalation, the ARS's on-call); the patient and their
referrer are told nothing more. Pure."""

from __future__ import annotations

from shared.events import RecipientKind

STILL_TOLD = frozenset({RecipientKind.CENTRE, RecipientKind.CENTRE_15, RecipientKind.ONCALL})


def may_tell(recipient: RecipientKind, restricted: bool) -> bool:
    return not restricted or recipient in STILL_TOLD
