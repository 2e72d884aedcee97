"""The French geodata: lookups against known communes, postcode resolution the way
referrers write it, and the spatial index checked against brute force."""

from __future__ import annotations

import gc
import importlib
import random
import time
from collections.abc import Callable, ItemsView, Iterator

import pytest

from shared.geo import (
    CommuneResolution,
    GridIndex,
    commune,
    communes,
    communes_for_postcode,
    communes_in_departement,
    departement,
    departements,
    haversine_km,
    normalise_name,
    resolve_commune,
)

# The package re-exports the function communes(), which hides the submodule of the
# same name from attribute access.
communes_module = importlib.import_module("shared.geo.communes")

# Metropolitan France's bounding box, roughly.
FRANCE_LAT = (42.3, 51.1)
FRANCE_LON = (-4.8, 8.2)


def test_loading_is_fast_and_cached() -> None:
    communes_module._index.cache_clear()
    communes_module._departements.cache_clear()
    # CPU time, not wall time: the load of a parallel test run must not fail it. The
    # collector paused: the loading's allocations would otherwise set off collections
    # of the whole heap a long test run has built (1.25 s once, against 0.27 s alone).
    gc.collect()
    gc.disable()
    try:
        started = time.process_time()
        commune("35238")
        departement("35")
        elapsed = time.process_time() - started
    finally:
        gc.enable()
    assert elapsed < 1.0
    assert communes_module._index() is communes_module._index()


def test_rennes() -> None:
    rennes = commune("35238")
    assert rennes is not None
    assert rennes.name == "Rennes"
    assert rennes.kind == "COM"
    assert rennes.departement == "35"
    assert rennes.lat == pytest.approx(48.11, abs=0.01)
    assert rennes.lon == pytest.approx(-1.68, abs=0.01)
    assert rennes.population > 200_000
    assert "35000" in rennes.postcodes
    assert rennes in communes_in_departement("35")


def test_the_whole_data_set_is_there() -> None:
    everything = communes()
    assert len(everything) == 34_912
    assert len({c.insee for c in everything}) == len(everything)
    assert sum(c.kind == "ARM" for c in everything) == 45
    assert all(-22 < c.lat < 52 and -62 < c.lon < 56 for c in everything)
    # The communes the source has no outline for are absent, not half-filled.
    assert commune("12218") is None
    assert commune("69114") is None


def test_departements() -> None:
    ille_et_vilaine = departement("35")
    assert ille_et_vilaine is not None
    assert ille_et_vilaine.name == "Ille-et-Vilaine"
    assert (ille_et_vilaine.region_code, ille_et_vilaine.region_name) == ("53", "Bretagne")
    everything = departements()
    assert len(everything) == 101
    assert {"2A", "2B", "971", "976"} <= {d.code for d in everything}
    assert departement("20") is None
    assert departement("99") is None
    in_35 = communes_in_departement("35")
    assert len(in_35) > 300
    assert {c.departement for c in in_35} == {"35"}
    assert communes_in_departement("99") == []


def test_returned_lists_do_not_alias_the_cache() -> None:
    communes_in_departement("35").clear()
    communes_for_postcode("35760").clear()
    communes().clear()
    departements().clear()
    assert communes_in_departement("35")
    assert len(communes_for_postcode("35760")) == 2
    assert communes()
    assert departements()


def test_postcode_of_a_single_commune() -> None:
    assert [c.insee for c in communes_for_postcode("35000")] == ["35238"]
    resolution = resolve_commune(postcode="35000")
    assert resolution.error is None
    assert resolution.commune is not None and resolution.commune.insee == "35238"
    # A lone commune is taken whatever name comes with it: the postcode is the
    # stronger signal and names are often misspelt.
    assert resolve_commune(postcode="35000", name="Renne").commune == commune("35238")


def test_postcode_lists_the_most_populous_first() -> None:
    found = communes_for_postcode("01400")
    assert len(found) == 10
    assert found[0].name == "Châtillon-sur-Chalaronne"
    populations = [c.population for c in found]
    assert populations == sorted(populations, reverse=True)
    assert all("01400" in c.postcodes for c in found)
    assert communes_for_postcode("00000") == []


def test_ambiguous_postcode_lists_the_candidates() -> None:
    resolution = resolve_commune(postcode="35760")
    assert resolution.commune is None
    assert resolution.error == "ambiguous_postcode"
    assert {c.insee for c in resolution.candidates} == {"35189", "35278"}
    unmatched = resolve_commune(postcode="35760", name="Rennes")
    assert unmatched.error == "ambiguous_postcode"
    assert unmatched.commune is None
    assert len(unmatched.candidates) == 2


@pytest.mark.parametrize(
    "name",
    [
        "Saint-Grégoire",
        "saint gregoire",
        "SAINT GREGOIRE",
        "St Grégoire",
        "st-gregoire",
        "  Saint -  Grégoire ",
    ],
)
def test_ambiguous_postcode_resolved_by_name(name: str) -> None:
    resolution = resolve_commune(postcode="35760", name=name)
    assert resolution.error is None
    assert resolution.commune is not None and resolution.commune.insee == "35278"
    assert {c.insee for c in resolution.candidates} == {"35189", "35278"}


@pytest.mark.parametrize(
    ("postcode", "name", "insee"),
    [
        ("01400", "Chatillon sur Chalaronne", "01093"),
        ("01400", "abergement clemenciat", "01001"),
        # NFKD leaves œ whole: it must become "oe", not vanish.
        ("02160", "Oeuilly", "02565"),
        ("02160", "Œuilly", "02565"),
        # The source drops leading articles; people write them.
        ("61300", "L'Aigle", "61214"),
        ("61300", "l’aigle", "61214"),
        ("16400", "La Couronne", "16113"),
        ("16400", "Couronne", "16113"),
    ],
)
def test_names_match_as_people_write_them(postcode: str, name: str, insee: str) -> None:
    resolution = resolve_commune(postcode=postcode, name=name)
    assert resolution.error is None, resolution
    assert resolution.commune is not None and resolution.commune.insee == insee


def test_normalise_name() -> None:
    assert normalise_name("Plœuc-L'Hermitage") == "ploeuc l hermitage"
    assert normalise_name("Ste-Foy") == normalise_name("Sainte Foy") == "sainte foy"
    assert normalise_name("La") == "la"


def test_unknown_and_missing() -> None:
    assert resolve_commune(insee="99999") == CommuneResolution(None, (), "unknown_insee")
    assert resolve_commune(postcode="00000").error == "unknown_postcode"
    assert resolve_commune().error == "missing"
    assert resolve_commune(name="Rennes").error == "missing"
    assert resolve_commune(insee="", postcode="  ").error == "missing"
    # A wrong INSEE code is the sender's error to fix, not a cue to guess by postcode.
    assert resolve_commune(insee="99999", postcode="35000").error == "unknown_insee"


def test_insee_wins_over_postcode_and_name() -> None:
    resolution = resolve_commune(insee="35238", postcode="29000", name="Quimper")
    assert resolution.error is None
    assert resolution.commune is not None and resolution.commune.name == "Rennes"
    assert resolve_commune(insee=" 35238 ").commune == commune("35238")


@pytest.mark.parametrize(
    ("insee", "name", "kind"),
    [
        ("75056", "Paris", "COM"),
        ("69123", "Lyon", "COM"),
        ("13055", "Marseille", "COM"),
        ("75101", "Paris 1er Arrondissement", "ARM"),
        ("69381", "Lyon 1er Arrondissement", "ARM"),
        ("13201", "Marseille 1er Arrondissement", "ARM"),
    ],
)
def test_cities_with_arrondissements_resolve_by_insee(insee: str, name: str, kind: str) -> None:
    resolution = resolve_commune(insee=insee)
    assert resolution.error is None
    assert resolution.commune is not None
    assert (resolution.commune.name, resolution.commune.kind) == (name, kind)


def test_arrondissements_carry_the_postcodes() -> None:
    paris = commune("75056")
    assert paris is not None and paris.postcodes == ()
    assert [c.insee for c in communes_for_postcode("75001")] == ["75101"]
    assert resolve_commune(postcode="75020").commune == commune("75120")
    assert resolve_commune(postcode="69009").commune == commune("69389")
    assert resolve_commune(postcode="13016").commune == commune("13216")


def test_haversine() -> None:
    assert haversine_km(48.8566, 2.3522, 48.1173, -1.6778) == pytest.approx(308, abs=5)
    paris, rennes = commune("75056"), commune("35238")
    assert paris is not None and rennes is not None
    assert haversine_km(paris.lat, paris.lon, rennes.lat, rennes.lon) == pytest.approx(308, abs=5)
    assert haversine_km(45.0, 5.0, 45.0, 5.0) == 0.0
    assert haversine_km(43.3, 5.4, 50.6, 3.06) == pytest.approx(haversine_km(50.6, 3.06, 43.3, 5.4))
    # One degree of latitude, and half the globe.
    assert haversine_km(0, 0, 1, 0) == pytest.approx(111.19, abs=0.01)
    assert haversine_km(0, 0, 0, 180) == pytest.approx(20_015.1, abs=0.5)


def _brute_force(
    points: dict[int, tuple[float, float]],
    lat: float,
    lon: float,
    k: int,
    max_km: float | None,
) -> list[tuple[int, float]]:
    distances = [(key, haversine_km(lat, lon, plat, plon)) for key, (plat, plon) in points.items()]
    distances = [(key, d) for key, d in distances if max_km is None or d <= max_km]
    distances.sort(key=lambda item: item[1])
    return distances[:k]


def _assert_same(got: list[tuple[int, float]], expected: list[tuple[int, float]]) -> None:
    assert [key for key, _ in got] == [key for key, _ in expected]
    assert [d for _, d in got] == pytest.approx([d for _, d in expected])


def _random_france(rng: random.Random) -> tuple[float, float]:
    return rng.uniform(*FRANCE_LAT), rng.uniform(*FRANCE_LON)


@pytest.mark.parametrize("k", [1, 5, 20])
@pytest.mark.parametrize("max_km", [None, 15.0, 60.0])
@pytest.mark.parametrize("cell_degrees", [0.25, 0.1, 1.0])
def test_grid_nearest_agrees_with_brute_force(
    k: int, max_km: float | None, cell_degrees: float
) -> None:
    rng = random.Random(f"{k}-{max_km}-{cell_degrees}")
    points = {key: _random_france(rng) for key in range(2_000)}
    index: GridIndex[int] = GridIndex(cell_degrees)
    for key, (lat, lon) in points.items():
        index.add(key, lat, lon)
    assert len(index) == 2_000
    for _ in range(100):
        lat, lon = _random_france(rng)
        got = index.nearest(lat, lon, k, max_km)
        _assert_same(got, _brute_force(points, lat, lon, k, max_km))
        if max_km is not None:
            assert all(d <= max_km for _, d in got)


def test_grid_with_sparse_and_far_points() -> None:
    # Overseas points and queries far from any point: the search has to cross many
    # empty rings, or fall back to the occupied cells, without missing anything.
    rng = random.Random(7)
    overseas = [(16.2, -61.5), (14.6, -61.0), (4.9, -52.3), (-21.1, 55.5), (-12.8, 45.2)]
    points = {key: overseas[key] for key in range(len(overseas))}
    points |= {len(points) + n: _random_france(rng) for n in range(30)}
    index: GridIndex[int] = GridIndex()
    for key, (lat, lon) in points.items():
        index.add(key, lat, lon)
    queries = [*overseas, (46.0, 2.0), (60.0, 25.0), (-40.0, 100.0), (89.0, 0.0)]
    queries += [_random_france(rng) for _ in range(50)]
    for lat, lon in queries:
        for k in (1, 3, 10, 100):
            for max_km in (None, 500.0, 8_000.0):
                _assert_same(
                    index.nearest(lat, lon, k, max_km),
                    _brute_force(points, lat, lon, k, max_km),
                )


def test_grid_on_the_real_communes() -> None:
    everything = communes()
    index: GridIndex[str] = GridIndex()
    for c in everything:
        index.add(c.insee, c.lat, c.lon)
    rennes = commune("35238")
    assert rennes is not None
    nearest = index.nearest(rennes.lat, rennes.lon, 3)
    assert nearest[0] == ("35238", 0.0)
    assert all(commune(key) is not None for key, _ in nearest)
    points = {n: (c.lat, c.lon) for n, c in enumerate(everything)}
    by_number = {c.insee: n for n, c in enumerate(everything)}
    rng = random.Random(35)
    for _ in range(20):
        lat, lon = _random_france(rng)
        got = [(by_number[key], d) for key, d in index.nearest(lat, lon, 10, 30.0)]
        _assert_same(got, _brute_force(points, lat, lon, 10, 30.0))


def test_grid_remove_and_move() -> None:
    index: GridIndex[str] = GridIndex()
    index.add("rennes", 48.1118, -1.6819)
    index.add("vitre", 48.1236, -1.2094)
    index.add("quimper", 47.996, -4.102)
    assert len(index) == 3
    assert [key for key, _ in index.nearest(48.11, -1.68, 1)] == ["rennes"]
    index.remove("rennes")
    assert len(index) == 2
    assert "rennes" not in index
    assert [key for key, _ in index.nearest(48.11, -1.68, 5)] == ["vitre", "quimper"]
    index.remove("rennes")  # absent: a no-op
    assert len(index) == 2
    # Adding a key again moves it rather than keeping two positions.
    index.add("vitre", 43.3, 5.4)
    assert len(index) == 2
    assert [key for key, _ in index.nearest(48.11, -1.68, 5)] == ["quimper", "vitre"]
    index.remove("vitre")
    index.remove("quimper")
    assert len(index) == 0
    assert index.nearest(48.11, -1.68, 5) == []


def test_grid_remove_against_brute_force() -> None:
    rng = random.Random(99)
    points = {key: _random_france(rng) for key in range(2_000)}
    index: GridIndex[int] = GridIndex()
    for key, (lat, lon) in points.items():
        index.add(key, lat, lon)
    for key in rng.sample(sorted(points), 1_500):
        index.remove(key)
        del points[key]
    assert len(index) == 500
    for _ in range(100):
        lat, lon = _random_france(rng)
        for k in (1, 5, 20):
            _assert_same(index.nearest(lat, lon, k), _brute_force(points, lat, lon, k, None))


def test_grid_edge_cases() -> None:
    index: GridIndex[str] = GridIndex()
    assert index.nearest(48.0, 2.0, 3) == []
    index.add("a", 48.0, 2.0)
    assert index.nearest(48.0, 2.0, 0) == []
    assert index.nearest(48.0, 2.0, 3) == [("a", 0.0)]
    assert index.nearest(48.5, 2.0, 3, max_km=10) == []
    with pytest.raises(ValueError, match="WGS84"):
        index.add("b", 91.0, 2.0)
    with pytest.raises(ValueError, match="WGS84"):
        index.add("b", float("nan"), 2.0)
    with pytest.raises(ValueError, match="cell_degrees"):
        GridIndex(0)


class _CountingCells(dict[tuple[int, int], dict[int, tuple[float, float]]]):
    """The index's cell table, counting the cells a query looks at."""

    looked_at = 0

    def get(self, key: tuple[int, int], default: object = None) -> object:  # type: ignore[override]
        self.looked_at += 1
        return super().get(key, default)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        self.looked_at += len(self)
        return super().__iter__()

    def items(self) -> ItemsView[tuple[int, int], dict[int, tuple[float, float]]]:  # type: ignore[override]
        self.looked_at += len(self)
        return super().items()


def _count_cells(index: GridIndex[int]) -> _CountingCells:
    counting = _CountingCells(index._cells)
    index._cells = counting
    return counting


def _counting_distance(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    real: Callable[[float, float, float, float], float] = haversine_km

    def counted(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
        calls[0] += 1
        return real(lat1, lon1, lat2, lon2)

    monkeypatch.setattr("shared.geo.grid.haversine_km", counted)
    return calls


def _france_and_far_away(rng: random.Random) -> tuple[GridIndex[int], GridIndex[int]]:
    """2,000 points over France, and the same with 12 copies of them elsewhere."""
    france = [_random_france(rng) for _ in range(2_000)]
    elsewhere = [
        (lat + dlat, lon + dlon)
        for dlat in (-20.0, -10.0, 10.0)
        for dlon in (-40.0, -20.0, 20.0, 40.0)
        for lat, lon in france
    ]
    small: GridIndex[int] = GridIndex()
    large: GridIndex[int] = GridIndex()
    for key, (lat, lon) in enumerate(france):
        small.add(key, lat, lon)
        large.add(key, lat, lon)
    for key, (lat, lon) in enumerate(elsewhere, start=len(france)):
        large.add(key, lat, lon)
    assert len(large) == 13 * len(small)
    return small, large


def test_grid_cost_does_not_grow_with_far_points(monkeypatch: pytest.MonkeyPatch) -> None:
    # The same density over a much larger area: a query in France must measure the
    # same handful of points and look at the same cells, not more as the index grows.
    rng = random.Random(2020)
    small, large = _france_and_far_away(rng)
    small_cells, large_cells = _count_cells(small), _count_cells(large)
    calls = _counting_distance(monkeypatch)
    for _ in range(50):
        lat, lon = rng.uniform(44.0, 49.0), rng.uniform(-1.0, 5.0)
        calls[0] = small_cells.looked_at = large_cells.looked_at = 0
        found = small.nearest(lat, lon, 5)
        in_small = calls[0]
        assert large.nearest(lat, lon, 5) == found
        assert calls[0] == 2 * in_small
        assert large_cells.looked_at == small_cells.looked_at
        # A few rings of cells, not a scan: 2,000 points over France are ~1 per cell.
        assert in_small < 100
        assert small_cells.looked_at < 200


def test_grid_cost_is_capped_by_the_points_when_they_are_far() -> None:
    # Five overseas points and a query in Paris: walking every empty ring out to La
    # Réunion would look at some 300,000 cells.
    index: GridIndex[int] = GridIndex()
    for key, (lat, lon) in enumerate(
        [(16.2, -61.5), (14.6, -61.0), (4.9, -52.3), (-21.1, 55.5), (-12.8, 45.2)]
    ):
        index.add(key, lat, lon)
    cells = _count_cells(index)
    assert [key for key, _ in index.nearest(48.86, 2.35, 10)] == [0, 1, 2, 4, 3]
    assert cells.looked_at < 100
