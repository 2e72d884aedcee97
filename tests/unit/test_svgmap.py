"""The ARS's map (aiguillage/console/svgmap.py): the vendored outlines, the fit that
places centres on them, and the regional views."""

from __future__ import annotations

from aiguillage.console.svgmap import DATA, bounds, outlines, project, region_map
from shared.geo import communes_in_departement


def test_the_vendored_outlines_are_small_and_licensed() -> None:
    assert DATA.stat().st_size < 300_000
    assert "Attribution 4.0" in (DATA.parent / "LICENSE.md").read_text()
    assert len(outlines()) == 96  # the mainland and Corsica


def test_communes_fall_in_their_departement() -> None:
    # Each commune's point projected lies within its département's box (a margin of
    # 3 units, a couple of kilometres): a wrong fit would send centres off their
    # département, and Paris's arrondissements out of Paris.
    missed, total = 0, 0
    for code in outlines():
        x0, y0, x1, y1 = bounds(code)
        for place in communes_in_departement(code):
            x, y = project(place.lat, place.lon)
            total += 1
            missed += not (x0 - 3 <= x <= x1 + 3 and y0 - 3 <= y <= y1 + 3)
    assert missed / total < 0.005
    for place in communes_in_departement("75"):
        x, y = project(place.lat, place.lon)
        x0, y0, x1, y1 = bounds("75")
        assert x0 - 1 <= x <= x1 + 1 and y0 - 1 <= y <= y1 + 1, place.name


def test_ile_de_france_is_zoomed_labelled_and_coloured() -> None:
    deps = [
        {"departement": "75", "today": {"capacity": 100, "booked": 97}, "waiting": 12},
        {"departement": "93", "today": {"capacity": 40, "booked": 10}, "waiting": 0},
    ]
    centres = [
        {
            "centre_id": "p13",
            "name": "Gymnase 13e",
            "commune_insee": "75113",
            "departement": "75",
            "status": "active",
            "today": {"occupancy": 0.97},
        },
        {
            "centre_id": "r35",
            "name": "Rennes",
            "commune_insee": "35238",
            "departement": "35",
            "status": "active",
            "today": {"occupancy": 0.1},
        },
    ]
    shown = region_map("11", deps, centres)
    assert shown is not None and shown.name == "Île-de-France"
    mine = {a.code: a for a in shown.areas if a.in_region}
    assert set(mine) == {"75", "77", "78", "91", "92", "93", "94", "95"}
    assert mine["75"].lines == ("Paris (75)", "3 places libres", "12 en attente")
    assert mine["75"].fill == "#ef9a9a" and mine["93"].fill == "#c8e6c9"
    assert mine["77"].fill == "#e0e0e0"  # no capacity today
    # Zoomed: the view is a small part of France's 613 units.
    width = float(shown.view_box.split()[2])
    assert width < 150
    # Only the region's centres, the other region's not on it.
    assert [m.centre_id for m in shown.markers] == ["p13"]
    bretagne = region_map("53", [], centres)
    assert bretagne is not None
    assert {a.code for a in bretagne.areas if a.in_region} == {"22", "29", "35", "56"}
    assert region_map("01", [], []) is None  # Guadeloupe: no outline
