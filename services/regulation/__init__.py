"""The regulation service: each referral gets the decision of the protocol that applies,
which a regulator of Centre 15 may supersede (README.md).

What the CLI uses of it: the protocol as data (``aiguillage regulate``), its purge
(``aiguillage purge``), its part of a patient's data (``aiguillage privacy``).
"""

from services.regulation.domain.protocol import Protocol, load_protocol
from services.regulation.handlers.privacy import patient_part
from services.regulation.handlers.retention import purge_steps

__all__ = ["Protocol", "load_protocol", "patient_part", "purge_steps"]
