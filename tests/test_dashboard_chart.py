"""The throughput chart's geometry (jobqueue.dashboard.chart): round axis ticks, bars
stacked to scale, minutes ago along the axis, the hour's totals."""

from __future__ import annotations

import pytest

pytest.importorskip("jinja2")

from jobqueue.dashboard.chart import build, round_up
from jobqueue.dashboard.throughput import MINUTE_MS, Minute, Snapshot


@pytest.mark.parametrize(
    ("value", "expected"), [(0, 1), (1, 1), (2, 2), (3, 5), (7, 10), (11, 20), (140, 200)]
)
def test_the_axis_tops_at_a_round_number(value: int, expected: int) -> None:
    assert round_up(value) == expected


def test_bars_ticks_and_totals() -> None:
    now = 100 * MINUTE_MS + 30_000
    minutes = [Minute((41 + i) * MINUTE_MS, 0, 0) for i in range(60)]
    minutes[-1] = Minute(100 * MINUTE_MS, 12, 2)
    minutes[-11] = Minute(90 * MINUTE_MS, 3, 0)
    chart = build(Snapshot(0, now, minutes, 12, 2))
    assert [t.label for t in chart.ticks] == ["0", "10", "20"]
    assert (chart.completed, chart.failed, chart.empty) == (15, 2, False)
    last, ten_ago = chart.bars[-1], chart.bars[-11]
    assert last.label == "this minute: 12 completed, 2 failed"
    assert ten_ago.label == "10 min ago: 3 completed, 0 failed"
    plot_h = chart.baseline - chart.ticks[-1].y  # the height of 20 jobs
    assert last.completed_h == pytest.approx(plot_h * 12 / 20, abs=0.02)
    assert last.failed_y + last.failed_h == pytest.approx(last.completed_y, abs=0.02)
    assert [x.label for x in chart.x_labels][::4] == ["60 min ago", "now"]
    empty = build(Snapshot(0, now, [Minute(m.at, 0, 0) for m in minutes], 0, 0))
    assert empty.empty and [t.label for t in empty.ticks] == ["0", "1"]
