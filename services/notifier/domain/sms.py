"""How long an SMS is, counted as operators count it, and French text that stays in
their cheapest alphabet. Pure functions: no I/O.

An SMS carries 140 bytes. In the GSM 03.38 default alphabet (7 bits a character) that
is 160 characters; a character of its extension table (``€ [ ] { } ^ ~ | \\``, form
feed) takes two. A single character outside both (``â``, ``ç``, ``«``, ``’``, ``–``)
makes the whole message UCS-2: 70 characters. A longer message is cut into segments
that each lose room to the concatenation header: 153 septets, or 67 UCS-2 units; an
extension character or a surrogate pair is never split across two. Each segment is
billed and may arrive on its own, so notices are written to fit ``MAX_SEGMENTS``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

MAX_SEGMENTS = 2

# The default alphabet (3GPP TS 23.038, 6.2.1), escape excluded: é è ù ì ò à É Ç are in
# it, â ê î ô û ç ë ï are not.
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table (6.2.1.1): an escape and the character, two septets.
GSM_EXTENSION = frozenset("\f^{}\\[~]|€")

_SINGLE = {"GSM-7": 160, "UCS-2": 70}
_PART = {"GSM-7": 153, "UCS-2": 67}


@dataclass(frozen=True)
class SmsSize:
    encoding: Literal["GSM-7", "UCS-2"]
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int


def is_gsm(text: str) -> bool:
    return all(c in GSM_BASIC or c in GSM_EXTENSION for c in text)


def measure(text: str) -> SmsSize:
    """The encoding an operator sends ``text`` in, its length in that encoding's units,
    and the segments it takes (an empty message still takes one)."""
    encoding: Literal["GSM-7", "UCS-2"]
    if is_gsm(text):
        encoding, widths = "GSM-7", [2 if c in GSM_EXTENSION else 1 for c in text]
    else:
        encoding, widths = "UCS-2", [2 if ord(c) > 0xFFFF else 1 for c in text]
    units = sum(widths)
    if units <= _SINGLE[encoding]:
        return SmsSize(encoding, units, 1)
    return SmsSize(encoding, units, _parts(widths, _PART[encoding]))


def _parts(widths: Sequence[int], room: int) -> int:
    """Segments of ``room`` units each, a character never split between two."""
    segments, used = 1, 0
    for width in widths:
        if used + width > room:
            segments, used = segments + 1, 0
        used += width
    return segments


def segments(text: str) -> int:
    return measure(text).segments


# What French text needs outside the default alphabet, and its nearest inside it.
_NEAREST = str.maketrans(
    {
        "â": "a", "ê": "e", "î": "i", "ô": "o", "û": "u", "ë": "e", "ï": "i", "ÿ": "y",
        "ç": "c", "á": "a", "í": "i", "ó": "o", "ú": "u", "ã": "a", "õ": "o",
        "À": "A", "Â": "A", "È": "E", "Ê": "E", "Ë": "E", "Î": "I", "Ï": "I", "Ô": "O",
        "Û": "U", "Ù": "U", "Ÿ": "Y",
        "œ": "oe", "Œ": "OE", "«": '"', "»": '"', "“": '"', "”": '"', "„": '"',
        "‘": "'", "’": "'", "‚": "'", "´": "'", "`": "'",
        "–": "-", "—": "-", "‐": "-", "‑": "-", "−": "-", "…": "...", "°": "o",
        "\u00a0": " ", "\u202f": " ", "\u2009": " ", "\t": " ",
    }
)  # fmt: skip
# French guillemets take a space inside (« École »); quotes do not ("École").
_GUILLEMETS = re.compile(r"«\s*|\s*»")


def to_gsm(text: str) -> str:
    """``text`` in the GSM default alphabet: French letters outside it by their nearest
    (ê → e, ç → c, œ → oe, ’ → '), any other by its letter without its accent, and what
    has none (a letter of another script) as ``?``: one such character would make the
    whole message UCS-2, less than half as long."""
    text = _GUILLEMETS.sub('"', text).translate(_NEAREST)
    return "".join(c if c in GSM_BASIC or c in GSM_EXTENSION else _bare(c) for c in text)


def _bare(char: str) -> str:
    letters = "".join(
        c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c)
    )
    return letters if letters and is_gsm(letters) else "?"


def fit(
    choices: Sequence[str], cut: Callable[[int], str] | None = None, limit: int = MAX_SEGMENTS
) -> str:
    """The first of ``choices`` (the fullest first) that fits ``limit`` segments, in the
    GSM alphabet. If none does, ``cut(n)`` (the text with its longest value cut to ``n``
    characters) for the largest ``n`` that fits; else the last choice, however long
    (a notice is sent rather than dropped)."""
    for choice in choices:
        text = to_gsm(choice)
        if segments(text) <= limit:
            return text
    if cut is not None:
        for n in range(len(choices[-1]), -1, -1):
            text = to_gsm(cut(n))
            if segments(text) <= limit:
                return text
    return to_gsm(choices[-1])
