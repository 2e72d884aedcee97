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
    commune: Commune | None
    candidates: tuple[Commune, ...] = ()
    error: str | None = None  # unknown_insee, unknown_postcode, ambiguous_postcode, missing


@dataclass(frozen=True)
class _Index:
    by_insee: dict[str, Commune]
    by_postcode: dict[str, tuple[Commune, ...]]
    by_departement: dict[str, tuple[Commune, ...]]


@cache
def _index() -> _Index:
    raw = (files("shared.geo") / "data" / "communes-fr.csv.gz").read_bytes()
    by_insee: dict[str, Commune] = {}
    by_postcode: dict[str, list[Commune]] = defaultdict(list)
    by_departement: dict[str, list[Commune]] = defaultdict(list)
    with io.TextIOWrapper(gzip.GzipFile(fileobj=io.BytesIO(raw)), encoding="utf-8") as text:
        for row in csv.DictReader(text):
            commune = Commune(
                insee=row["insee"],
                kind=row["kind"],
                name=row["name"],
                departement=row["departement"],
                population=int(row["population"] or 0),
                lat=float(row["lat"]),
                lon=float(row["lon"]),
                postcodes=tuple(p for p in row["postcodes"].split("|") if p),
            )
            by_insee[commune.insee] = commune
            by_departement[commune.departement].append(commune)
            for postcode in commune.postcodes:
                by_postcode[postcode].append(commune)
    return _Index(
        by_insee=by_insee,
        by_postcode={
            p: tuple(sorted(cs, key=lambda c: -c.population)) for p, cs in by_postcode.items()
        },
        by_departement={d: tuple(cs) for d, cs in by_departement.items()},
    )


@cache
def _departements() -> dict[str, Departement]:
    text = (files("shared.geo") / "data" / "departements-fr.csv").read_text(encoding="utf-8")
    return {
        row["departement"]: Departement(
            row["departement"], row["name"], row["region_code"], row["region_name"]
        )
        for row in csv.DictReader(io.StringIO(text))
    }


def commune(insee: str) -> Commune | None:
    return _index().by_insee.get(insee)


def communes() -> list[Commune]:
    return list(_index().by_insee.values())


def communes_in_departement(code: str) -> list[Commune]:
    return list(_index().by_departement.get(code, ()))


def communes_for_postcode(postcode: str) -> list[Commune]:
    return list(_index().by_postcode.get(postcode, ()))


def departement(code: str) -> Departement | None:
    return _departements().get(code)


def departements() -> list[Departement]:
    return list(_departements().values())


def normalise_name(name: str) -> str:
    """Case, accents, hyphens and 'St'/'Ste' do not matter when people write a commune."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    text = text.replace("-", " ").replace("'", " ")
    words = [{"st": "saint", "ste": "sainte"}.get(w, w) for w in text.split()]
    return " ".join(words)


def resolve_commune(
    *, insee: str | None = None, postcode: str | None = None, name: str | None = None
) -> CommuneResolution:
    if insee:
        found = commune(insee)
        return CommuneResolution(found) if found else CommuneResolution(None, (), "unknown_insee")
    if not postcode:
        return CommuneResolution(None, (), "missing")
    candidates = tuple(communes_for_postcode(postcode))
    if not candidates:
        return CommuneResolution(None, (), "unknown_postcode")
    if len(candidates) == 1:
        return CommuneResolution(candidates[0], candidates)
    if name:
        wanted = normalise_name(name)
        matches = [c for c in candidates if normalise_name(c.name) == wanted]
        if len(matches) == 1:
            return CommuneResolution(matches[0], candidates)
    return CommuneResolution(None, candidates, "ambiguous_postcode")
