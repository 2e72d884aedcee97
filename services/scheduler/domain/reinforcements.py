"""What a centre is told, in French, of its ARS's answer to its request for
reinforcement (the message of the event its own queue receives)."""

from __future__ import annotations

from shared.events import (
    ReinforcementAcknowledged,
    ReinforcementAnswer,
    ReinforcementDeclined,
    ReinforcementGranted,
)


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n <= 1 else many}"


def told_to_centre(answer: ReinforcementAnswer, count: int, profession: str) -> str:
    """The sentence the centre reads for ``answer`` to its request of ``count``
    ``profession``."""
    asked = f"votre demande de renfort ({count} {profession})"
    if isinstance(answer, ReinforcementGranted):
        given = ", ".join(
            (
                _plural(answer.boxes, "box", "box"),
                _plural(answer.staff, "personnel", "personnels"),
                _plural(answer.hours, "heure", "heures"),
            )
        )
        text = f"L'ARS accorde {asked} : {given}."
    elif isinstance(answer, ReinforcementDeclined):
        text = f"L'ARS refuse {asked}. Motif : {answer.reason}"
    elif isinstance(answer, ReinforcementAcknowledged):
        text = f"L'ARS a pris en compte {asked} ; sa réponse suivra."
    else:
        raise TypeError(type(answer).__name__)
    note = getattr(answer, "note", "")
    return f"{text} Précisions : {note}" if note else text
