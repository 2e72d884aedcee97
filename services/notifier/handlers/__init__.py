"""The notifier's consumers: tell each centre of its patients, each referrer of the
outcome of its referral, each patient of the appointment, Centre 15 of escalations.

One module per queue (``assignments``, ``referrals``, ``contacts``, ``centres``,
``oncall``: the ARS's on-call told of alerts by e-mail and SMS; ``restrictions``: the
patients who restricted their referral's processing), on
what they share (``telling``: whom to tell, and how); ``NotifierHandlers`` is all of
them, its methods routed by event type in ``app.py``'s ``ROUTES``. Sends to the outside
world (e-mail, SMS, webhooks) are not made here: the handler records them as pending in
its transaction, and the ``dispatcher`` sends them with retries through the
``channels``. What travels on the broker (centre, referrer reply key, Centre 15) is
staged in the outbox in the same transaction, so it is as reliable as every other event.
"""

from __future__ import annotations

from services.notifier.handlers.assignments import AssignmentHandlers
from services.notifier.handlers.centres import CentreHandlers
from services.notifier.handlers.contacts import ContactHandlers
from services.notifier.handlers.dispatcher import Dispatcher
from services.notifier.handlers.oncall import OnCallHandlers
from services.notifier.handlers.referrals import ReferralHandlers
from services.notifier.handlers.restrictions import RestrictionHandlers
from services.notifier.handlers.telling import CENTRE_15

__all__ = ["CENTRE_15", "Dispatcher", "NotifierHandlers"]


class NotifierHandlers(
    AssignmentHandlers,
    ReferralHandlers,
    ContactHandlers,
    CentreHandlers,
    OnCallHandlers,
    RestrictionHandlers,
):
    """Every handler of the notifier, on one instance (``Teller``'s arguments)."""
