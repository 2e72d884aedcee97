"""What the door reads and checks of a hub message before handling it: who is answered
(``publisher``), which sender may speak of which case (``sender_refusal``,
``case_refusal``), and first of all its size and nesting, on the raw bytes, then the
JSON (``read``). Reading is cheap and bounded, so it runs as the message arrives, before
the message takes one of the door's places (``lanes``).

A message over a bound, or not JSON, fails the same way every time: it is answered 300
INVALID_MESSAGE once and acked, never requeued. (``json.loads`` on ``[`` × 5,000 raises
``RecursionError``, which the door used to requeue: 1,294 deliveries in 5 s.)
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiguillage.hubsante.messages import ErrorCode

# The hub's deepest message (its examples, in the envelope) has 11 levels; an RS-ERROR
# quoting one as its sourceMessage, 18.
MAX_DEPTH = 32
# The bytes that open, close or escape something: only they matter to the depth.
_STRUCTURE = re.compile(rb'[\\"\[\]{}]')
_QUOTE, _BACKSLASH = ord('"'), ord("\\")
_OPEN, _CLOSE = frozenset(b"[{"), frozenset(b"]}")


class Unreadable(Exception):
    """The message cannot be read: the cause, in French, for the RS-ERROR."""


def too_deep(body: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether ``body`` nests arrays and objects deeper than ``limit``, brackets inside
    strings aside: one pass, without parsing."""
    depth, in_string, skip = 0, False, -1
    for found in _STRUCTURE.finditer(body):
        at = found.start()
        if at == skip:  # the character after a backslash, in a string
            continue
        byte = body[at]
        if in_string:
            if byte == _BACKSLASH:
                skip = at + 1
            elif byte == _QUOTE:
                in_string = False
        elif byte == _QUOTE:
            in_string = True
        elif byte in _OPEN:
            depth += 1
            if depth > limit:
                return True
        elif byte in _CLOSE:
            depth -= 1
    return False


def read(body: bytes, max_bytes: int, max_depth: int = MAX_DEPTH) -> Any:
    """The message's JSON, within the bounds; else ``Unreadable``."""
    if len(body) > max_bytes:
        raise Unreadable(f"message de {len(body)} octets : la porte en accepte {max_bytes} au plus")
    if too_deep(body, max_depth):
        raise Unreadable(f"JSON imbriqué sur plus de {max_depth} niveaux")
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise Unreadable("le message n'est pas du JSON") from exc


def case_id(message: Any) -> str | None:
    """The case an RS-EDA or RS-EDA-MAJ message is about, before any validation (it may
    be anything): what keeps one case's messages in order."""
    try:
        inner = message["content"][0]["jsonContent"]["embeddedJsonContent"]["message"]
    except (KeyError, IndexError, TypeError):
        return None
    if not isinstance(inner, dict):
        return None
    for use_case in ("createCaseHealth", "createCaseHealthUpdate"):
        case = inner.get(use_case)
        if isinstance(case, dict) and isinstance(case.get("caseId"), str):
            return str(case["caseId"])
    return None


def publisher(message: Any, published_with: str | None) -> str | None:
    """Who is answered: the key the message was published with, when the hub passes it
    on, never a senderID that disagrees with it; else the senderID, which the real hub
    checked against that key at its entry. ``None``: nobody to answer."""
    if published_with:
        return published_with
    sender = message.get("senderID") if isinstance(message, dict) else None
    return sender if isinstance(sender, str) and sender else None


def distribution_id(message: Any) -> str:
    """The id an answer names (``unknown`` for a message that has none)."""
    named = message.get("distributionID") if isinstance(message, dict) else None
    return named if isinstance(named, str) else "unknown"


def sender_refusal(sender: str, distribution: str, published_with: str | None) -> str | None:
    """Why a valid message's senderID is not its publisher's (the hub's own two rules,
    its 200), or ``None``."""
    if published_with is not None and sender != published_with:
        return "le senderID n'est pas la clé de routage avec laquelle le message a été publié"
    if not distribution.startswith(f"{sender}_"):
        return "le distributionID ne commence pas par le senderID"
    return None


# How far the door's own columns and intake's referral hold a case id and a sender
# (``ReferralSubmitted.reference``, ``Referrer.identifier``): two ids cut to the same
# prefix would name one referral.
CASE_ID_LENGTH, SENDER_LENGTH = 100, 64


def case_refusal(case: str, sender: str) -> tuple[ErrorCode, str] | None:
    """Why ``sender`` may not speak of case ``case`` (the code and the cause), or ``None``.

    A case id is ``{pays}.{domaine}.{organisation}.{senderCaseId}``, made once by the
    partner that created the case (RS-EDA.schema.json, caseId's description), so it
    begins with the creator's client id: in the hub's examples
    ``fr.health.samu440.DRFR154402413800236`` is fr.health.samu440's
    (examples/RS-EDA/RS-EDA-SMUR_FuiteDeGaz_AliceGregoireNormand.01.json). A case a SAMU
    refers to a consultation is its own, so its id begins with the sender's id and a
    dot. The hub also lets a SAMU pass on a case another partner created, under that
    partner's id (RS-EDA-SMUR_FemmeEnceinte_DelphineVigneau.01.json:
    ``fr.fire.sis044.cga-044.…`` in fr.health.samu440's case): the door refuses it, or
    a SAMU could name, take or probe another's case.

    The hub's ErrorCode list has no code of its own for it: 200 SENDER_INCONSISTENCY is
    its answer to an id that disagrees with its sender (a senderID that is not the
    routing key, a distributionID that does not begin with the senderID: the same rule
    for another id); 701 CASE_ALREADY_EXISTS would tell the sender the other's case
    exists.
    """
    if len(sender) > SENDER_LENGTH or len(case) > CASE_ID_LENGTH:
        cause = (
            f"la porte prend un senderID de {SENDER_LENGTH} caractères et un caseId de "
            f"{CASE_ID_LENGTH} au plus"
        )
        return ErrorCode.INVALID_MESSAGE, cause
    if not case.startswith(f"{sender}."):
        cause = "le caseId ne commence pas par le senderID : ce dossier n'est pas le vôtre"
        return ErrorCode.SENDER_INCONSISTENCY, cause
    return None
