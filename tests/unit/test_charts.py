"""The overview's charts: bars stacked from the API's numbers, scaled to a round maximum, labelled sparsely; latency
lines with gaps where nothing was delivered."""

from __future__ import annotations

import pytest

from workers.web import charts


def hour(iso: str, **counts) -> dict:
    base = {
        "hour": iso,
        "received": 0,
        "delivered": 0,
        "held": 0,
        "filtered": {},
        "rejected": {},
        "objects": 0,
        "bytes": 0,
        "latency_p50_s": None,
        "latency_p95_s": None,
    }
    return base | counts


def test_bars_stack_each_hours_events_by_where_they_went_on_a_round_scale():
    hours = [
        hour(
            "2026-12-07T04:00:00Z", received=70, delivered=60, held=5, filtered={"consent_denied": 3}, rejected={"x": 2}
        ),
        hour("2026-12-07T05:00:00Z"),
    ]
    chart = charts.bars(hours)
    first, empty = chart.columns
    assert [r.series for r in first.rects] == ["delivered", "held", "filtered", "rejected"]
    plot = charts.BARS_HEIGHT - charts.BOTTOM - charts.TOP
    assert [t.label for t in chart.ticks] == ["0", "50", "100"]  # 70 rounds up to 100
    assert [r.height for r in first.rects] == pytest.approx(
        [plot * 0.6, plot * 0.05, plot * 0.03, plot * 0.02], abs=0.01
    )
    assert first.rects[0].y + first.rects[0].height == charts.TOP + plot  # the stack starts on the axis
    assert all(
        a.y == pytest.approx(b.y + b.height, abs=0.02) for a, b in zip(first.rects, first.rects[1:], strict=False)
    )
    assert "70 received, 60 delivered in 0 objects, 5 held, 3 filtered, 2 rejected" in first.title
    assert empty.rects == [] and not chart.empty


def test_a_week_of_hours_is_labelled_about_eight_times():
    hours = [hour(f"2026-12-{1 + n // 24:02d}T{n % 24:02d}:00:00Z") for n in range(168)]
    labels = [c.label for c in charts.bars(hours).columns if c.label]
    assert 6 <= len(labels) <= 10 and charts.bars(hours).empty


def test_latency_lines_skip_hours_without_deliveries():
    hours = [
        hour("2026-12-07T03:00:00Z", latency_p50_s=20.0, latency_p95_s=50.0),
        hour("2026-12-07T04:00:00Z"),
        hour("2026-12-07T05:00:00Z", latency_p50_s=30.0, latency_p95_s=100.0),
    ]
    chart = charts.latency(hours)
    assert len(chart.p95.split()) == 2 and len(chart.p50.split()) == 2
    assert [t.label for t in chart.ticks] == ["0 s", "50 s", "100 s"]
    assert chart.points[1][1] == charts.TOP  # the highest p95 touches the top
    assert "p50 30 s, p95 100 s" in chart.points[1][2]
