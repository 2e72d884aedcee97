"""The ARS's chart of a département's saturation forecast (issue 31), drawn on the
server as SVG: per 6 hours over the last and next 72 hours, the patients oriented
(bars), the places of its active centres (a step line), and the arrivals forecast
(their median, a line, in a band from the 10th to the 90th percentile). The same
figures are in a table beside it (``rows``), for a screen reader and for whoever
prefers numbers; the summary in words (``hours_text``) says when the centres will be
full. Geometry only: the template draws it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.paris import in_paris

WIDTH, HEIGHT = 640.0, 260.0
LEFT, RIGHT, TOP, BOTTOM = 48.0, 10.0, 12.0, 34.0


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Tick:
    x: float
    y: float
    text: str
    anchor: str = "middle"  # the ends' labels kept inside the drawing


@dataclass(frozen=True)
class Chart:
    width: float
    height: float
    bars: tuple[Bar, ...]
    places: str  # the places' step line (SVG points)
    band: str  # the P10-P90 polygon
    median: str  # the P50 line
    now_x: float
    top: float
    bottom: float
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]


def hours_text(view: Mapping[str, Any]) -> str:
    """When the département's centres will be full, in words (French)."""
    band = view.get("hours_until_full") or {}
    p10, p50, p90 = band.get("p10"), band.get("p50"), band.get("p90")
    horizon = view.get("horizon_hours", 72)
    if p50 is None:
        if p10 is None:
            return f"pas de saturation prévue sous {horizon} h"
        return f"pas de saturation prévue sous {horizon} h (1 chance sur 10 dès {p10} h)"
    if p50 == 0:
        return "saturé dès maintenant"
    upper = f"{p90} h" if p90 is not None else f"plus de {horizon} h"
    return f"saturé dans {p50} h environ (entre {p10} h et {upper}, 8 chances sur 10)"


def _scale(blocks: Sequence[Mapping[str, Any]]) -> float:
    highest = 1.0
    for b in blocks:
        highest = max(highest, float(b.get("places") or 0), float(b.get("arrivals") or 0))
        if b.get("forecast"):
            highest = max(highest, float(b["forecast"][2]))
    # A round top: 1, 2 or 5 times a power of ten.
    step = 1.0
    while True:
        for factor in (1, 2, 5):
            if factor * step >= highest:
                return factor * step
        step *= 10


def _points(pairs: Sequence[tuple[float, float]]) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in pairs)


def forecast_chart(view: Mapping[str, Any]) -> Chart | None:
    """The chart of the scheduler's forecast view (``GET /territory/{code}/forecast``)."""
    blocks = list(view.get("blocks") or [])
    if not blocks:
        return None
    top_value = _scale(blocks)
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = inner_w / len(blocks)
    bottom = TOP + inner_h

    def y(value: float) -> float:
        return bottom - inner_h * value / top_value

    bars, places, low, high, median = [], [], [], [], []
    for i, b in enumerate(blocks):
        left = LEFT + i * slot
        if b.get("arrivals") is not None:
            y_of = y(float(b["arrivals"]))
            h = round(bottom - y_of, 1)
            bars.append(Bar(round(left + slot * 0.15, 1), round(y_of, 1), round(slot * 0.7, 1), h))
        places += [(left, y(float(b["places"]))), (left + slot, y(float(b["places"])))]
        if b.get("forecast"):
            p10, p50, p90 = (float(v) for v in b["forecast"])
            middle = left + slot / 2
            low.append((middle, y(p10)))
            high.append((middle, y(p90)))
            median.append((middle, y(p50)))
    now_index = next((i for i, b in enumerate(blocks) if b.get("ahead")), len(blocks))
    block_hours = int(view.get("block_hours") or 6)
    marks = range(0, len(blocks) + 1, max(1, len(blocks) // 6))
    x_ticks = tuple(
        Tick(
            LEFT + i * slot,
            bottom + 18,
            _when(block_hours * (i - now_index)),
            "start" if i == 0 else "end" if i == len(blocks) else "middle",
        )
        for i in marks
    )
    y_ticks = tuple(
        Tick(LEFT - 4, y(top_value * k / 4), f"{top_value * k / 4:g}") for k in range(5)
    )
    return Chart(
        WIDTH,
        HEIGHT,
        tuple(bars),
        _points(places),
        _points(high + low[::-1]),
        _points(median),
        LEFT + now_index * slot,
        TOP,
        bottom,
        x_ticks,
        y_ticks,
    )


def _when(hours: int) -> str:
    if hours == 0:
        return "maintenant"
    return f"{hours:+d} h".replace("-", "−")


def rows(view: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The chart's figures, one row per 6 hours (Paris time), for the table."""
    out = []
    for b in view.get("blocks") or []:
        start = in_paris(datetime.fromisoformat(b["start"]))
        forecast = b.get("forecast")
        out.append(
            {
                "when": start.strftime("%d/%m %Hh"),
                "ahead": bool(b.get("ahead")),
                "arrivals": b.get("arrivals"),
                "places": b.get("places"),
                "free": b.get("free"),
                "forecast": f"{forecast[1]} ({forecast[0]} à {forecast[2]})" if forecast else None,
            }
        )
    return out
