"""A grid of cells over latitude/longitude: the spatial prefilter that keeps the
search for nearby points independent of how many points there are in France."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable
from math import cos, floor, radians
from typing import Generic, TypeVar

from shared.geo.distance import EARTH_RADIUS_KM, haversine_km

K = TypeVar("K", bound=Hashable)

KM_PER_DEGREE = EARTH_RADIUS_KM * 3.141592653589793 / 180


class GridIndex(Generic[K]):
    def __init__(self, cell_degrees: float = 0.25) -> None:
        self.cell = cell_degrees
        self._cells: dict[tuple[int, int], dict[K, tuple[float, float]]] = defaultdict(dict)
        self._where: dict[K, tuple[int, int]] = {}

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, key: object) -> bool:
        return key in self._where

    def _cell_of(self, lat: float, lon: float) -> tuple[int, int]:
        return floor(lat / self.cell), floor(lon / self.cell)

    def add(self, key: K, lat: float, lon: float) -> None:
        self.remove(key)
        cell = self._cell_of(lat, lon)
        self._cells[cell][key] = (lat, lon)
        self._where[key] = cell

    def remove(self, key: K) -> None:
        cell = self._where.pop(key, None)
        if cell is not None:
            del self._cells[cell][key]
            if not self._cells[cell]:
                del self._cells[cell]

    def _ring_lower_bound_km(self, lat: float, ring: int) -> float:
        """No point in ring ``ring`` (Chebyshev distance in cells) is nearer than this.

        A point ``ring`` cells away is at least ``ring - 1`` whole cells away along
        latitude or longitude. A longitude cell is narrowest at the highest latitude
        the ring reaches, so that latitude bounds its width from below.
        """
        if ring <= 1:
            return 0.0
        gap = (ring - 1) * self.cell
        lat_km = gap * KM_PER_DEGREE
        highest = min(89.9, abs(lat) + (ring + 1) * self.cell)
        lon_km = gap * KM_PER_DEGREE * cos(radians(highest))
        return min(lat_km, lon_km)

    def nearest(
        self, lat: float, lon: float, k: int, max_km: float | None = None
    ) -> list[tuple[K, float]]:
        """Up to ``k`` keys nearest to (lat, lon), with their distance in km, nearest first."""
        if k <= 0 or not self._where:
            return []
        ci, cj = self._cell_of(lat, lon)
        found: list[tuple[float, K]] = []
        rows = {c[0] for c in self._cells}
        cols = {c[1] for c in self._cells}
        max_ring = max(max(abs(r - ci) for r in rows), max(abs(c - cj) for c in cols))
        for ring in range(max_ring + 1):
            bound = self._ring_lower_bound_km(lat, ring)
            if max_km is not None and bound > max_km:
                break
            if len(found) >= k and bound > found[k - 1][0]:
                break
            for cell in _ring_cells(ci, cj, ring):
                for key, (plat, plon) in self._cells.get(cell, {}).items():
                    distance = haversine_km(lat, lon, plat, plon)
                    if max_km is None or distance <= max_km:
                        found.append((distance, key))
            found.sort(key=lambda item: item[0])
        return [(key, distance) for distance, key in found[:k]]


def _ring_cells(ci: int, cj: int, ring: int) -> list[tuple[int, int]]:
    if ring == 0:
        return [(ci, cj)]
    cells = [(ci + d, cj + e) for d in (-ring, ring) for e in range(-ring, ring + 1)]
    cells += [(ci + d, cj + e) for e in (-ring, ring) for d in range(-ring + 1, ring)]
    return cells
