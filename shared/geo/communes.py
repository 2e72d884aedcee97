"""French communes and départements, from the package data (see data/SOURCE.md)."""

from __future__ import annotations

import csv
import gzip
import io
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Final


@dataclass(frozen=True, slots=True)
class Commune:
    insee: str
    kind: str  # COM, or ARM for a municipal arrondissement
    name: str
    departement: str
    population: int
    lat: float
    lon: float
    postcodes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Departement:
    code: str
    name: str
    region_code: str
    region_name: str


@dataclass(frozen=True, slots=True)
class CommuneResolution:
    """The commune a referral designates, or why there is none.

    ``error`` is a stable code callers turn into messages: ``unknown_insee``,
    ``unknown_postcode``, ``ambiguous_postcode`` (``candidates`` lists the communes
    the postcode covers) or ``missing`` (neither an INSEE code nor a postcode).
    """

    commune: Commune | None
    candidates: tuple[Commune, ...] = ()
    error: str | None = None


UNKNOWN_INSEE: Final = "unknown_insee"
UNKNOWN_POSTCODE: Final = "unknown_postcode"
AMBIGUOUS_POSTCODE: Final = "ambiguous_postcode"
MISSING: Final = "missing"


@dataclass(frozen=True, slots=True)
class _Index:
    by_insee: dict[str, Commune]
    by_postcode: dict[str, tuple[Commune, ...]]
    by_departement: dict[str, tuple[Commune, ...]]


def _data(name: str) -> Traversable:
    return files("shared.geo") / "data" / name


@cache
def _index() -> _Index:
    by_insee: dict[str, Commune] = {}
    by_postcode: dict[str, list[Commune]] = defaultdict(list)
    by_departement: dict[str, list[Commune]] = defaultdict(list)
    with (
        _data("communes-fr.csv.gz").open("rb") as compressed,
        io.TextIOWrapper(gzip.GzipFile(fileobj=compressed), encoding="utf-8") as text,
    ):
        for row in csv.DictReader(text):
            commune = Commune(
                insee=row["insee"],
                kind=row["kind"],
                name=row["name"],
                departement=row["departement"],
                # Mayotte's communes and Hauts-Talican have no population in the source.
                population=int(row["population"] or 0),
                lat=float(row["lat"]),
                lon=float(row["lon"]),
                # Paris, Lyon and Marseille carry their postcodes on their arrondissements.
                postcodes=tuple(p for p in row["postcodes"].split("|") if p),
            )
            by_insee[commune.insee] = commune
            by_departement[commune.departement].append(commune)
            for postcode in commune.postcodes:
                by_postcode[postcode].append(commune)
    return _Index(
        by_insee=by_insee,
        by_postcode={
            # The most populous first: the likeliest when a person gives only the postcode.
            p: tuple(sorted(cs, key=lambda c: (-c.population, c.insee)))
            for p, cs in by_postcode.items()
        },
        by_departement={d: tuple(cs) for d, cs in by_departement.items()},
    )


@cache
def _departements() -> dict[str, Departement]:
    text = _data("departements-fr.csv").read_text(encoding="utf-8")
    return {
        row["departement"]: Departement(
            code=row["departement"],
            name=row["name"],
            region_code=row["region_code"],
            region_name=row["region_name"],
        )
        for row in csv.DictReader(io.StringIO(text))
    }


# The public functions return fresh lists so that callers cannot alter the cache.


def commune(insee: str) -> Commune | None:
    return _index().by_insee.get(insee)


def communes() -> list[Commune]:
    """Every commune and municipal arrondissement, by INSEE code."""
    return list(_index().by_insee.values())


def communes_in_departement(code: str) -> list[Commune]:
    return list(_index().by_departement.get(code, ()))


def communes_for_postcode(postcode: str) -> list[Commune]:
    """The communes a postcode covers, the most populous first."""
    return list(_index().by_postcode.get(postcode, ()))


def departement(code: str) -> Departement | None:
    return _departements().get(code)


def departements() -> list[Departement]:
    return list(_departements().values())


# Letters NFKD leaves whole; dropping them as non-ASCII would turn "Œuilly" into "uilly".
_LIGATURES = str.maketrans({"œ": "oe", "æ": "ae", "ß": "ss"})
# Typographic apostrophes are what word processors and phones type.
_SEPARATORS = str.maketrans({"-": " ", "'": " ", "\u2019": " ", "\u2018": " "})
_ABBREVIATIONS = {"st": "saint", "ste": "sainte"}
# The source stores names without their leading article ("Couronne" for La Couronne,
# "Aigle" for L'Aigle), while people write it.
_ARTICLES = frozenset({"le", "la", "les", "l"})


def normalise_name(name: str) -> str:
    """Case, accents, hyphens, apostrophes, 'St'/'Ste' and a leading article do not
    matter when people write a commune's name."""
    decomposed = unicodedata.normalize("NFKD", name.lower().translate(_LIGATURES))
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    words = bare.translate(_SEPARATORS).split()
    if len(words) > 1 and words[0] in _ARTICLES:
        words = words[1:]
    return " ".join(_ABBREVIATIONS.get(word, word) for word in words)


def resolve_commune(
    *, insee: str | None = None, postcode: str | None = None, name: str | None = None
) -> CommuneResolution:
    """The commune designated by an INSEE code, else by a postcode and, when the
    postcode covers several communes, the commune's name.

    A given INSEE code decides alone: the postcode and name are not checked against
    it, and an unknown code is an error rather than a reason to fall back on the
    postcode, since it means the sender's data is wrong.
    """
    insee = (insee or "").strip()
    postcode = (postcode or "").strip()
    if insee:
        found = commune(insee)
        if found is None:
            return CommuneResolution(None, (), UNKNOWN_INSEE)
        return CommuneResolution(found)
    if not postcode:
        return CommuneResolution(None, (), MISSING)
    candidates = tuple(communes_for_postcode(postcode))
    if not candidates:
        return CommuneResolution(None, (), UNKNOWN_POSTCODE)
    if len(candidates) == 1:
        return CommuneResolution(candidates[0], candidates)
    if name:
        wanted = normalise_name(name)
        matches = [c for c in candidates if normalise_name(c.name) == wanted]
        if len(matches) == 1:
            return CommuneResolution(matches[0], candidates)
    return CommuneResolution(None, candidates, AMBIGUOUS_POSTCODE)
