"""The ARS's forecast chart and its words (issue 31), on figures worked out by hand."""

from __future__ import annotations

from typing import Any

from aiguillage.console.forecast_chart import (
    BOTTOM,
    HEIGHT,
    LEFT,
    RIGHT,
    TOP,
    WIDTH,
    forecast_chart,
    hours_text,
    rows,
)


def _view(p10: int | None, p50: int | None, p90: int | None) -> dict[str, Any]:
    past = [
        {
            "start": f"2026-03-0{1 + i // 4}T{(i % 4) * 6:02d}:00:00+00:00",
            "ahead": False,
            "arrivals": 10 * i,
            "places": 40,
            "free": None,
            "forecast": None,
        }
        for i in range(2)
    ]
    ahead = [
        {
            "start": "2026-03-01T12:00:00+00:00",
            "ahead": True,
            "arrivals": None,
            "places": 40,
            "free": 30,
            "forecast": [20, 30, 45],
        }
    ]
    return {
        "horizon_hours": 72,
        "block_hours": 6,
        "hours_until_full": {"p10": p10, "p50": p50, "p90": p90},
        "blocks": past + ahead,
    }


def test_the_words_say_the_median_and_its_band() -> None:
    assert hours_text(_view(7, 11, 19)) == (
        "saturé dans 11 h environ (entre 7 h et 19 h, 8 chances sur 10)"
    )
    assert hours_text(_view(7, 11, None)).endswith("(entre 7 h et plus de 72 h, 8 chances sur 10)")
    assert hours_text(_view(0, 0, 3)) == "saturé dès maintenant"
    assert hours_text(_view(None, None, None)) == "pas de saturation prévue sous 72 h"
    assert hours_text(_view(40, None, None)) == (
        "pas de saturation prévue sous 72 h (1 chance sur 10 dès 40 h)"
    )


def test_the_chart_scales_to_a_round_top_and_puts_now_between_past_and_future() -> None:
    chart = forecast_chart(_view(7, 11, 19))
    assert chart is not None
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    bottom = TOP + inner_h
    # The highest figure is the P90, 45: the top is 50; three blocks share the width.
    assert [t.text for t in chart.y_ticks] == ["0", "12.5", "25", "37.5", "50"]
    slot = inner_w / 3
    assert chart.now_x == LEFT + 2 * slot
    # The second past block, 10 arrivals: a bar a fifth of the height; the first, none.
    first, second = chart.bars
    assert first.height == 0
    assert abs(second.height - round(inner_h * 10 / 50, 1)) < 0.11
    assert abs(second.y + second.height - bottom) < 0.11
    # The places, 40, a step line at 4/5 of the height over the whole width.
    y40 = bottom - inner_h * 40 / 50
    assert chart.places.split()[0] == f"{LEFT:.1f},{y40:.1f}"
    assert chart.places.split()[-1] == f"{LEFT + 3 * slot:.1f},{y40:.1f}"
    # The forecast in the future block's middle: median 30, band 20 to 45.
    middle = LEFT + 2.5 * slot
    assert chart.median == f"{middle:.1f},{bottom - inner_h * 30 / 50:.1f}"
    assert chart.band.split()[0] == f"{middle:.1f},{bottom - inner_h * 45 / 50:.1f}"
    assert [t.text for t in chart.x_ticks][:3] == ["−12 h", "−6 h", "maintenant"]


def test_the_table_has_a_row_per_block_in_paris_time() -> None:
    table = rows(_view(7, 11, 19))
    assert [r["when"] for r in table] == ["01/03 01h", "01/03 07h", "01/03 13h"]
    assert table[2]["forecast"] == "30 (20 à 45)" and table[0]["forecast"] is None
    assert forecast_chart({"blocks": []}) is None
