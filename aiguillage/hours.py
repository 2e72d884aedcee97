"""Opening hours written the way people write them, in French or in English:

- ``lun-ven 08:00-20:00 ; sam 09:00-13:00`` (groups separated by ``;``),
- ``lun,mer,ven 09:00-12:00 14:00-18:00`` (several ranges a day),
- ``tous les jours 08:00-20:00`` (``tlj``, ``all``), ``mon-fri 9h-19h``.

Each group is days, then one or more ranges. Days: ``lun mar mer jeu ven sam dim`` (or
the whole word, ``lundi``; or ``mon``... ``sun``), a list (``lun,mer``), a span
(``lun-ven``, ``ven-lun`` over the weekend). A time: ``08:00``, ``8:00``, ``8h``,
``8h30``; ``24:00`` closes at midnight. A wrong text is refused with what was expected,
in French (``HoursError``): the ARS person reads it, in the command or the console.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from itertools import pairwise

from shared.events import OpeningPeriod

FRENCH_DAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
ENGLISH_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DAYS: dict[str, int] = {
    **{name: day for day, name in enumerate(FRENCH_DAYS)},
    **{name[:3]: day for day, name in enumerate(FRENCH_DAYS)},
    **{name: day for day, name in enumerate(ENGLISH_DAYS)},
    **{name[:3]: day for day, name in enumerate(ENGLISH_DAYS)},
    "tues": 1,
    "thur": 3,
    "thurs": 3,
}
EVERY_DAY = frozenset({"tous les jours", "tlj", "7j/7", "all", "daily", "*"})
EXPECTED_DAYS = "lun, mar, mer, jeu, ven, sam, dim (ou lun-ven)"
EXAMPLE = "« lun-ven 08:00-20:00 ; sam 09:00-13:00 »"

_TIME = re.compile(r"^(\d{1,2})(?:[:h](\d{2})?)?$")
# Spaces around "-" and "," are the writer's, not separators: "lun - ven", "9h - 12h".
_JOINED = re.compile(r"\s*([-,])\s*")


class HoursError(ValueError):
    """Opening hours that cannot be read: says what was expected, in French."""


def _plain(text: str) -> str:
    # Lower case, no accents, one kind of dash: "Lun–Ven" is "lun-ven".
    decomposed = unicodedata.normalize("NFKD", text.lower().replace("–", "-").replace("—", "-"))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _day(name: str) -> int:
    day = DAYS.get(name.rstrip("."))
    if day is None:
        raise HoursError(f"jour inconnu « {name} » : attendu {EXPECTED_DAYS}")
    return day


def _days(text: str) -> list[int]:
    """``lun-ven``, ``lun,mer,ven``, ``tous les jours``: the weekdays, 0 = Monday."""
    text = text.rstrip(" :")
    if text in EVERY_DAY:
        return list(range(7))
    days: list[int] = []
    for item in (i for i in re.split(r"[,\s]+", text) if i and i != "et"):
        first, dash, last = item.partition("-")
        if not dash:
            days.append(_day(item))
            continue
        start, end = _day(first), _day(last)
        # "ven-lun" goes over the weekend: Friday to Monday.
        days += [(start + i) % 7 for i in range((end - start) % 7 + 1)]
    return list(dict.fromkeys(days))


def _time(text: str, written: str) -> tuple[int, int]:
    match = _TIME.match(text)
    hour, minute = (int(match[1]), int(match[2] or 0)) if match else (-1, 0)
    if not (0 <= hour <= 23 and minute <= 59) and (hour, minute) != (24, 0):
        raise HoursError(
            f"heure invalide « {text} » dans « {written} » : attendu HH:MM, de 00:00 à 24:00"
        )
    return hour, minute


def _range(written: str) -> tuple[str, str]:
    """``08:00-20:00``, ``8h-12h30``: opening and closing as ``HH:MM``."""
    opens_text, dash, closes_text = written.partition("-")
    if not dash or not opens_text or not closes_text:
        raise HoursError(
            f"plage horaire invalide « {written} » : attendu HH:MM-HH:MM, par exemple 08:00-20:00"
        )
    opens, closes = _time(opens_text, written), _time(closes_text, written)
    if opens >= closes:
        raise HoursError(f"plage « {written} » : la fermeture doit suivre l'ouverture")
    return "{:02d}:{:02d}".format(*opens), "{:02d}:{:02d}".format(*closes)


def _group(text: str) -> list[OpeningPeriod]:
    """One group: days, then one or more ranges."""
    words = _JOINED.sub(r"\1", text).split()
    # The ranges begin at the first word that starts with a digit ("7j/7" is days).
    split = next(
        (i for i, w in enumerate(words) if w[0].isdigit() and w not in EVERY_DAY), len(words)
    )
    days_text, ranges = " ".join(words[:split]), [w for w in words[split:] if w != "et"]
    if not days_text:
        raise HoursError(
            f"jours manquants avant « {text} » : attendu par exemple « lun-ven 08:00-20:00 »"
        )
    if not ranges:
        raise HoursError(
            f"horaires manquants après « {days_text} » : attendu une plage comme 08:00-20:00"
        )
    spans = [_range(r) for written in ranges for r in written.split(",") if r]
    return [
        OpeningPeriod(weekday=day, opens=opens, closes=closes)
        for day in _days(days_text)
        for opens, closes in spans
    ]


def _no_overlap(periods: list[OpeningPeriod]) -> None:
    by_day: dict[int, list[OpeningPeriod]] = defaultdict(list)
    for period in periods:
        by_day[period.weekday].append(period)
    for day, ranges in by_day.items():
        ranges.sort(key=lambda p: p.opens)
        for before, after in pairwise(ranges):
            if after.opens < before.closes:
                raise HoursError(
                    f"plages qui se chevauchent le {FRENCH_DAYS[day]} : "
                    f"{before.opens}-{before.closes} et {after.opens}-{after.closes}"
                )


def parse_hours(text: str) -> tuple[OpeningPeriod, ...]:
    """The opening periods ``text`` says, by weekday then opening time."""
    periods: list[OpeningPeriod] = []
    for group in filter(None, (g.strip() for g in _plain(text).split(";"))):
        periods += _group(group)
    if not periods:
        given = f" dans « {text.strip()} »" if text.strip() else ""
        raise HoursError(f"aucun horaire{given} : attendu par exemple {EXAMPLE}")
    _no_overlap(periods)
    return tuple(sorted(periods, key=lambda p: (p.weekday, p.opens)))
