"""Regulation's handlers: each received referral gets a decision from the protocol that
applies (``referrals``); a published protocol becomes the one that applies
(``protocols``); a regulator's decision supersedes the one that stood (``overrides``).
Which event goes to which method: ``ROUTES`` in ``services/regulation/app.py``."""

from __future__ import annotations

from services.regulation.handlers.overrides import (
    Override,
    OverrideHandlers,
    UnknownReferral,
    apply_override,
)
from services.regulation.handlers.protocols import ProtocolHandlers
from services.regulation.handlers.referrals import ReferralHandlers
from services.regulation.store.protocols import ProtocolBook
from shared.territory import Territories

__all__ = ["Override", "RegulationHandlers", "UnknownReferral", "apply_override"]


class RegulationHandlers(ReferralHandlers, ProtocolHandlers, OverrideHandlers):
    """The consumers of regulation's two queues, one method per event type."""

    def __init__(self, book: ProtocolBook, territories: Territories | None = None) -> None:
        self.book = book
        self.territories = territories or Territories()
