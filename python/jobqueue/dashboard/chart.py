"""The geometry of the throughput chart, drawn by the template as inline SVG: a stacked
bar per minute (completed below, failed above), a y axis with round ticks and grid lines,
the minutes ago along the x axis, and the hour's totals in the legend."""

from __future__ import annotations

from dataclasses import dataclass

from .throughput import MINUTE_MS, Snapshot

WIDTH, HEIGHT = 1000, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 10, 24
#: Minutes ago labelled on the x axis.
X_LABELS = (60, 45, 30, 15, 0)


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    completed_y: float
    completed_h: float
    failed_y: float
    failed_h: float
    at: int
    label: str


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class XLabel:
    x: float
    label: str
    anchor: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: int
    right: float
    baseline: float
    bars: list[Bar]
    ticks: list[Tick]
    x_labels: list[XLabel]
    completed: int
    failed: int
    completed_last_minute: int
    failed_last_minute: int
    empty: bool


def round_up(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten that is at least ``value`` (>= 1)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def build(snapshot: Snapshot) -> Chart:
    rows = snapshot.minutes
    busiest = max([m.completed + m.failed for m in rows] + [1])
    top = round_up(busiest)
    plot_h = HEIGHT - TOP - BOTTOM
    baseline = float(TOP + plot_h)
    plot_w = WIDTH - LEFT - RIGHT
    step = plot_w / max(len(rows), 1)
    scale = plot_h / top
    bars = []
    for i, minute in enumerate(rows):
        x = LEFT + i * step + 0.5
        done_h = minute.completed * scale
        failed_h = minute.failed * scale
        ago = (snapshot.now // MINUTE_MS * MINUTE_MS - minute.at) // MINUTE_MS
        when = "this minute" if ago == 0 else f"{ago} min ago"
        bars.append(
            Bar(
                x=round(x, 2),
                width=round(max(step - 1.5, 1.0), 2),
                completed_y=round(baseline - done_h, 2),
                completed_h=round(done_h, 2),
                failed_y=round(baseline - done_h - failed_h, 2),
                failed_h=round(failed_h, 2),
                at=minute.at,
                label=f"{when}: {minute.completed} completed, {minute.failed} failed",
            )
        )
    values = (0, top) if top == 1 else (0, top // 2, top)
    ticks = [Tick(round(baseline - value * scale, 2), str(value)) for value in values]
    x_labels = []
    for ago in X_LABELS:
        x = LEFT + plot_w * (1 - ago / 60)
        anchor = "start" if ago == 60 else "end" if ago == 0 else "middle"
        x_labels.append(XLabel(round(x, 2), "now" if ago == 0 else f"{ago} min ago", anchor))
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        left=LEFT,
        right=WIDTH - RIGHT,
        baseline=baseline,
        bars=bars,
        ticks=ticks,
        x_labels=x_labels,
        completed=snapshot.completed,
        failed=snapshot.failed,
        completed_last_minute=snapshot.completed_last_minute,
        failed_last_minute=snapshot.failed_last_minute,
        empty=snapshot.completed + snapshot.failed == 0,
    )
