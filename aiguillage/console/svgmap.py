"""An SVG map of the communes, with the centres coloured by occupancy.

Points only (the communes' centres from shared.geo), projected equirectangularly around
the map's mean latitude: at the scale of a region the distortion is invisible, and the
map needs no boundary data, no tiles and nothing from the internet.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.geo import Commune, commune, communes_in_departement, departement

WIDTH = 640.0
MARGIN = 18.0


@dataclass(frozen=True)
class Dot:
    x: float
    y: float
    r: float
    fill: str
    title: str
    stroke: str = "none"
    centre_id: str | None = None


@dataclass(frozen=True)
class RegionMap:
    name: str
    width: float
    height: float
    communes: tuple[Dot, ...]
    centres: tuple[Dot, ...]
    labels: tuple[tuple[float, float, str], ...]


def occupancy_colour(occupancy: float | None, status: str) -> str:
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


class _Projection:
    def __init__(self, places: Iterable[Commune]) -> None:
        points = list(places)
        self.lat0 = sum(p.lat for p in points) / len(points)
        self.k = math.cos(math.radians(self.lat0))
        xs = [p.lon * self.k for p in points]
        ys = [p.lat for p in points]
        self.x0, self.y1 = min(xs), max(ys)
        span = max(max(xs) - self.x0, max(ys) - min(ys), 1e-6)
        self.scale = (WIDTH - 2 * MARGIN) / span
        self.height = (max(ys) - min(ys)) * self.scale + 2 * MARGIN
        self.width = (max(xs) - self.x0) * self.scale + 2 * MARGIN

    def __call__(self, lat: float, lon: float) -> tuple[float, float]:
        return (
            round(MARGIN + (lon * self.k - self.x0) * self.scale, 1),
            round(MARGIN + (self.y1 - lat) * self.scale, 1),
        )


def region_maps(centres: Iterable[Mapping[str, Any]]) -> list[RegionMap]:
    """One map per region that has centres, over the départements that have them."""
    by_region: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for entry in centres:
        place = commune(entry["commune_insee"])
        dep = departement(place.departement) if place else None
        if place is None or dep is None:
            continue
        by_region[dep.region_name].append(entry)
    maps = []
    for region, entries in sorted(by_region.items()):
        codes = sorted({commune(e["commune_insee"]).departement for e in entries})  # type: ignore[union-attr]
        # Paris is drawn by arrondissement, as the centres are placed.
        places = [
            c
            for code in codes
            for c in communes_in_departement(code)
            if c.kind == "ARM" or code != "75"
        ]
        if not places:
            continue
        project = _Projection(places)
        dots = tuple(
            Dot(
                *project(c.lat, c.lon),
                r=round(min(4.0, 0.7 + math.sqrt(c.population) / 120), 1),
                fill="#cfd8dc",
                title=f"{c.name} ({c.insee}), {c.population} hab.",
            )
            for c in places
        )
        labels = []
        for code in codes:
            members = [c for c in places if c.departement == code]
            weight = sum(c.population for c in members) or 1
            lat = sum(c.lat * c.population for c in members) / weight
            lon = sum(c.lon * c.population for c in members) / weight
            labels.append((*project(lat, lon), code))
        same_place: dict[str, int] = defaultdict(int)
        centre_dots = []
        for entry in sorted(entries, key=lambda e: e["centre_id"]):
            place = commune(entry["commune_insee"])
            assert place is not None
            x, y = project(place.lat, place.lon)
            # Centres of one commune (a Paris arrondissement) are fanned out around it.
            n = same_place[place.insee]
            same_place[place.insee] += 1
            if n:
                angle = n * 2.4
                x, y = round(x + 7 * math.cos(angle), 1), round(y + 7 * math.sin(angle), 1)
            occupancy = entry.get("today", {}).get("occupancy")
            status = entry.get("status", "active")
            shown = f"{occupancy:.0%}" if occupancy is not None else "sans créneau"
            centre_dots.append(
                Dot(
                    x,
                    y,
                    r=5.5,
                    fill=occupancy_colour(occupancy, status),
                    stroke="#263238",
                    title=f"{entry.get('name')} ({place.name}) : {shown}, {status}",
                    centre_id=entry["centre_id"],
                )
            )
        maps.append(
            RegionMap(
                region,
                round(project.width, 1),
                round(project.height, 1),
                dots,
                tuple(centre_dots),
                tuple(labels),
            )
        )
    return maps
