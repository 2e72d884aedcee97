"""A grid of cells over latitude/longitude: the spatial prefilter that keeps the
search for nearby points independent of how many points there are in France."""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from math import asin, cos, floor, radians, sin
from typing import Generic, TypeVar

from shared.geo.distance import EARTH_RADIUS_KM, haversine_km

K = TypeVar("K", bound=Hashable)

Cell = tuple[int, int]

# Float rounding in floor(lat / cell) or in haversine must never turn the lower bound
# into an overestimate that stops the search one ring too early.
_BOUND_SAFETY = 1 - 1e-9


class GridIndex(Generic[K]):
    """Points by key, bucketed into square cells of ``cell_degrees``.

    Longitudes are not wrapped at ±180°: French territory (−62° to 56°) never
    straddles the antimeridian, and wrapping would complicate every ring walk.
    """

    def __init__(self, cell_degrees: float = 0.25) -> None:
        if not 0 < cell_degrees <= 90:
            raise ValueError(f"cell_degrees must be in (0, 90], not {cell_degrees}")
        self._cell = cell_degrees
        self._cells: dict[Cell, dict[K, tuple[float, float]]] = {}
        self._where: dict[K, Cell] = {}

    @property
    def cell_degrees(self) -> float:
        return self._cell

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, key: object) -> bool:
        return key in self._where

    def _cell_of(self, lat: float, lon: float) -> Cell:
        return floor(lat / self._cell), floor(lon / self._cell)

    def add(self, key: K, lat: float, lon: float) -> None:
        """Add ``key`` at (lat, lon), moving it if it is already there."""
        # Written as negated ranges so that NaN is refused too.
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise ValueError(f"not a WGS84 position: ({lat}, {lon})")
        self.remove(key)
        cell = self._cell_of(lat, lon)
        self._cells.setdefault(cell, {})[key] = (lat, lon)
        self._where[key] = cell

    def remove(self, key: K) -> None:
        """Remove ``key``; absent keys are ignored so callers need not check first."""
        cell = self._where.pop(key, None)
        if cell is None:
            return
        members = self._cells[cell]
        del members[key]
        if not members:
            # Empty cells would make the fallback scan in nearest() grow with churn.
            del self._cells[cell]

    def _lower_bound_km(self, lat: float, ring: int) -> float:
        """No point ``ring`` or more cells away (Chebyshev distance) is nearer than this.

        Such a point is at least ``gap = (ring - 1)`` cells away in latitude or in
        longitude: query and point may sit anywhere in their own cells. A latitude gap
        costs at least ``gap`` of arc. A longitude gap puts the point beyond the
        meridian ``gap`` degrees from the query, and the spherical distance from the
        query to that meridian is ``asin(cos(lat) * sin(gap))`` whatever the point's
        own latitude. That is never more than ``gap`` itself, so it bounds both cases,
        and it only grows with ``ring``, so one ring beyond the k-th best rules out all
        the rings after it.
        """
        if ring <= 1:
            return 0.0
        # Beyond 90° of longitude the lune only shrinks, so the 90° bound stays valid.
        gap = radians(min((ring - 1) * self._cell, 90.0))
        return EARTH_RADIUS_KM * asin(cos(radians(lat)) * sin(gap)) * _BOUND_SAFETY

    def nearest(
        self, lat: float, lon: float, k: int, max_km: float | None = None
    ) -> list[tuple[K, float]]:
        """Up to ``k`` keys nearest to (lat, lon), with their great-circle distance in
        km, nearest first; only keys within ``max_km`` when it is given."""
        if k <= 0 or not self._where:
            return []
        ci, cj = self._cell_of(lat, lon)
        best: list[tuple[float, K]] = []
        seen = 0

        def consider(members: dict[K, tuple[float, float]]) -> None:
            for key, (plat, plon) in members.items():
                distance = haversine_km(lat, lon, plat, plon)
                if max_km is None or distance <= max_km:
                    best.append((distance, key))

        ring = 0
        while seen < len(self._where):
            bound = self._lower_bound_km(lat, ring)
            if max_km is not None and bound > max_km:
                break
            if len(best) >= k and bound > best[k - 1][0]:
                break
            if 8 * ring > len(self._cells):
                # The ring now has more cells than the index has occupied ones: walking
                # the occupied cells directly caps a query with few points near it (or
                # fewer than k in all) at the cost of the index size, instead of the
                # area up to the farthest point.
                for (i, j), members in self._cells.items():
                    if max(abs(i - ci), abs(j - cj)) >= ring:
                        consider(members)
                break
            for cell in _ring_cells(ci, cj, ring):
                occupants = self._cells.get(cell)
                if occupants:
                    seen += len(occupants)
                    consider(occupants)
            best.sort(key=_distance)
            del best[k:]
            ring += 1
        best.sort(key=_distance)
        return [(key, distance) for distance, key in best[:k]]


def _distance(item: tuple[float, object]) -> float:
    return item[0]


def _ring_cells(ci: int, cj: int, ring: int) -> Iterator[Cell]:
    """The cells exactly ``ring`` cells away (Chebyshev distance) from (ci, cj)."""
    if ring == 0:
        yield ci, cj
        return
    for j in range(cj - ring, cj + ring + 1):
        yield ci - ring, j
        yield ci + ring, j
    for i in range(ci - ring + 1, ci + ring):
        yield i, cj - ring
        yield i, cj + ring
