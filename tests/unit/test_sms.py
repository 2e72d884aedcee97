"""SMS length, counted as operators count it: GSM 03.38 septets (the extension table's
characters count two) or UCS-2 units, 160 / 153 and 70 / 67 a segment."""

from __future__ import annotations

import pytest

from services.notifier.domain.sms import fit, is_gsm, measure, segments, to_gsm


@pytest.mark.parametrize(
    ("text", "encoding", "units", "parts"),
    [
        ("", "GSM-7", 0, 1),
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),  # 2 × 153
        ("a" * 307, "GSM-7", 307, 3),
        # é è à ù ì ò É Ç are in the default alphabet: one septet each.
        ("é" * 160, "GSM-7", 160, 1),
        ("Ça a été à Évry", "GSM-7", 15, 1),
        # One € (the extension table) counts two.
        ("€" + "a" * 158, "GSM-7", 160, 1),
        ("€" + "a" * 159, "GSM-7", 161, 2),
        ("[]{}" + "a" * 152, "GSM-7", 160, 1),
        # Never split across two segments: 152 septets, then a € that starts the second.
        ("a" * 152 + "€" + "a" * 10, "GSM-7", 164, 2),
        ("a" * 152 + "€" + "a" * 152, "GSM-7", 306, 3),
        # One â, ç, «, ’ or – makes the whole message UCS-2: 70, then 67 a segment.
        ("â" + "a" * 69, "UCS-2", 70, 1),
        ("â" + "a" * 70, "UCS-2", 71, 2),
        ("ç" + "a" * 133, "UCS-2", 134, 2),
        ("’" + "a" * 134, "UCS-2", 135, 3),
        ("«" + "a" * 200, "UCS-2", 201, 3),
        # A character beyond the BMP takes two UCS-2 units, never split.
        ("😷" + "a" * 68, "UCS-2", 70, 1),
        ("a" * 66 + "😷" + "a" * 66, "UCS-2", 134, 3),
    ],
)
def test_segments_as_operators_count(text: str, encoding: str, units: int, parts: int) -> None:
    size = measure(text)
    assert (size.encoding, size.units, size.segments) == (encoding, units, parts)
    assert segments(text) == parts


def test_the_notice_of_before_took_ten_segments() -> None:
    """The appointment notice sent as an SMS until issue 27: its « » – and â made it
    UCS-2, and its length did the rest."""
    before = (
        "Bonjour, à la suite de l'avis de votre médecin, un rendez-vous de consultation "
        "vous est réservé le 24/03/2020 à 16h40 (heure de Paris) au centre « École de la "
        "Poterie », 12 rue de la Poterie, Rennes. Présentez-vous à l'heure, muni d'un "
        "masque si vous en avez un. En cas d'aggravation (difficulté à respirer, malaise), "
        "appelez le 15. Pour voir votre rendez-vous, l'annuler ou demander un autre "
        "créneau : https://aiguillage.sante.fr/patient/p1.00000000-0000-0000-0000-"
        "000000000000.11111111-1111-1111-1111-111111111111.1585065600.qwWHuauYdhiOH00oMhT"
        "JGA1ywCX3UAD_rChLMtxgpTk (lien personnel, valable jusqu'à la fin du rendez-vous)."
    )
    assert measure(before).encoding == "UCS-2"
    assert segments(before) == 10
    assert segments(to_gsm(before)) == 5  # the alphabet alone is not enough: 5 in GSM


@pytest.mark.parametrize(
    ("french", "gsm"),
    [
        ("Châteauroux, Pontchâteau", "Chateauroux, Pontchateau"),
        ("fenêtre, île, hôpital, flûte", "fenetre, ile, hopital, flute"),
        ("reçu, Noël, maïs, cœur, Œuvre", "recu, Noel, mais, coeur, OEuvre"),
        ("au centre « École de la Poterie »", 'au centre "École de la Poterie"'),
        ("l’école – n° 3…", "l'école - no 3..."),
        ("é è à ù É Ç ì ò ä ö ü ñ ß", "é è à ù É Ç ì ò ä ö ü ñ ß"),  # already GSM: kept
        ("Kraków, Ğebze", "Krakow, Gebze"),  # other languages' accents: the bare letter
        ("Łódź 北京", "?odz ??"),  # no letter to fall back on: not UCS-2 for it
    ],
)
def test_french_stays_in_the_gsm_alphabet(french: str, gsm: str) -> None:
    assert to_gsm(french) == gsm
    assert is_gsm(to_gsm(french))


def test_fit_takes_the_fullest_that_fits_then_cuts() -> None:
    assert fit(["a" * 300, "b"]) == "a" * 300
    assert fit(["a" * 400, "b" * 306, "c"]) == "b" * 306
    assert fit(["ê" * 400, "ç"]) == "c"  # measured once transliterated

    def cut(n: int) -> str:
        return "x" * n + " end"

    text = fit(["x" * 400 + " end"], cut)
    assert text == "x" * 302 + " end" and segments(text) == 2
    # Nothing fits and nothing can be cut: the last choice, sent rather than dropped.
    assert fit(["y" * 400]) == "y" * 400
