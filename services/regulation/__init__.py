"""The regulation service: each referral gets the decision of the protocol that applies,
which a regulator of Centre 15 may supersede (README.md).

What the CLI (``aiguillage regulate``) uses of it: the protocol as data.
"""

from services.regulation.domain.protocol import Protocol, load_protocol

__all__ = ["Protocol", "load_protocol"]
