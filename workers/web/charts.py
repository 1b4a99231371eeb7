"""The delivery overview as charts the server draws: SVG geometry computed here, markup in ``_overview.html``.

No script and nothing fetched: each hour is a stacked bar (delivered, held, filtered, rejected: every event received
that hour has settled in one of them, or is still on its way), with a ``<title>`` holding its numbers (shown on
hover and read by screen readers), and the event-to-object latency p50 / p95 as two lines. The SVG scales to the
width of its box (``viewBox``), so the same drawing serves 1280 px and 390 px.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

WIDTH = 720
BARS_HEIGHT = 180
LINES_HEIGHT = 120
LEFT = 48  # room for the axis labels
BOTTOM = 20
TOP = 12  # room for the top label
SERIES = (  # bottom to top
    ("delivered", "Delivered"),
    ("held", "Held"),
    ("filtered", "Filtered"),
    ("rejected", "Rejected"),
)


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    series: str


@dataclass(frozen=True)
class Column:
    hour: str  # ISO hour
    label: str  # the axis label under it, or "" (labels are thinned out)
    x: float
    width: float
    rects: list[Rect]
    title: str  # the hour's numbers


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    columns: list[Column]
    ticks: list[Tick]
    empty: bool


@dataclass(frozen=True)
class LineChart:
    width: int
    height: int
    p50: str  # SVG polyline points
    p95: str
    ticks: list[Tick]
    points: list[tuple[float, float, str]]  # (x, y, title) markers of p95
    empty: bool


def _nice_max(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value`` (at least 1)."""
    if value <= 1:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 5, 10):
        if value <= step * magnitude:
            return float(step * magnitude)
    return float(10 * magnitude)


def _count(hour: dict[str, Any], series: str) -> int:
    value = hour[series]
    return sum(value.values()) if isinstance(value, dict) else int(value)


def _label(iso_hour: str, n: int, every: int) -> str:
    if n % every:
        return ""
    return iso_hour[11:13] + "h" if iso_hour[11:13] != "00" else iso_hour[5:10]


def _short(n: float) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:g}M"
    if n >= 1_000:
        return f"{n / 1_000:g}k"
    return f"{n:g}"


def bars(hours: list[dict[str, Any]]) -> BarChart:
    """Stacked bars of the overview's ``hours`` (as ``workers.integrations.overview.hour_view`` gives them)."""
    plot_w, plot_h = WIDTH - LEFT, BARS_HEIGHT - BOTTOM - TOP
    top = _nice_max(max((sum(_count(h, s) for s, _ in SERIES) for h in hours), default=0))
    step = plot_w / max(len(hours), 1)
    every = max(1, round(len(hours) / 8))
    columns = []
    for n, h in enumerate(hours):
        x = LEFT + n * step
        y = float(TOP + plot_h)
        rects = []
        for series, _ in SERIES:
            value = _count(h, series)
            if value:
                height = plot_h * value / top
                y -= height
                left, width = round(x + step * 0.1, 2), round(step * 0.8, 2)
                rects.append(Rect(left, round(y, 2), width, round(height, 2), series))
        title = (
            f"{h['hour'][:13].replace('T', ' ')}h UTC: {h['received']:,} received, {h['delivered']:,} delivered "
            f"in {h['objects']:,} objects, {h['held']:,} held, {_count(h, 'filtered'):,} filtered, "
            f"{_count(h, 'rejected'):,} rejected"
        )
        columns.append(Column(h["hour"], _label(h["hour"], n, every), round(x, 2), round(step, 2), rects, title))
    ticks = [Tick(round(TOP + plot_h - plot_h * f, 2), _short(top * f)) for f in (0, 0.5, 1)]
    return BarChart(WIDTH, BARS_HEIGHT, columns, ticks, empty=not any(c.rects for c in columns))


def latency(hours: list[dict[str, Any]]) -> LineChart:
    """p50 and p95 of the event-to-object latency per hour, as two polylines (hours without deliveries are gaps)."""
    plot_w, plot_h = WIDTH - LEFT, LINES_HEIGHT - BOTTOM - TOP
    values = [h["latency_p95_s"] for h in hours if h["latency_p95_s"] is not None]
    top = _nice_max(max(values, default=0))
    step = plot_w / max(len(hours), 1)

    def points(name: str) -> str:
        out = []
        for n, h in enumerate(hours):
            if h[name] is not None:
                x = LEFT + n * step + step / 2
                out.append(f"{x:.1f},{TOP + plot_h - plot_h * h[name] / top:.1f}")
        return " ".join(out)

    markers = [
        (
            round(LEFT + n * step + step / 2, 1),
            round(TOP + plot_h - plot_h * h["latency_p95_s"] / top, 1),
            f"{h['hour'][:13].replace('T', ' ')}h UTC: p50 {h['latency_p50_s']:g} s, p95 {h['latency_p95_s']:g} s",
        )
        for n, h in enumerate(hours)
        if h["latency_p95_s"] is not None
    ]
    ticks = [Tick(round(TOP + plot_h - plot_h * f, 2), _short(top * f) + " s") for f in (0, 0.5, 1)]
    return LineChart(WIDTH, LINES_HEIGHT, points("latency_p50_s"), points("latency_p95_s"), ticks, markers, not values)
