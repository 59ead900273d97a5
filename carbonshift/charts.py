"""Charts as SVG strings, drawn with matplotlib: the plan's forecast per candidate region and a
run's forecast against actual intensity.

Deterministic, so that they can be snapshot-tested: fixed font, fixed SVG id salt, no date in the
metadata, glyphs drawn as paths (an SVG shown through <img>, as the Prefect UI shows image
artifacts, cannot load fonts: paths look the same there and in a browser). Figures are built
with `matplotlib.figure.Figure` and drawn by the SVG canvas attached to it, never through pyplot:
no backend is chosen, no GUI is touched and no figure is shared between threads. The rcParams
are global, so rendering holds a lock while it sets them.
"""

from __future__ import annotations

import io
import math
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import matplotlib.dates as mdates
from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure
from matplotlib.legend import Legend

from carbonshift.monitor import Assessment, Verdict
from carbonshift.plan import Slot
from carbonshift.run.supervisor import RunReport
from carbonshift.series import IntensitySeries

COLOURS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666")
UNITS = "gCO2/kWh"
WINDOW_COLOUR = "#4daf4a"
MARK_COLOUR = "#b2182b"
_RC: dict[Any, Any] = {  # matplotlib types the keys as a Literal of every rc name
    "font.family": "DejaVu Sans",  # bundled with matplotlib: the same glyphs on every machine
    "font.size": 9.0,
    "svg.fonttype": "path",
    "svg.hashsalt": "carbonshift",
    "svg.image_inline": True,
    "axes.grid": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.6,
    "path.simplify": False,  # every step of the series, not a simplified line
}
_METADATA: dict[str, str | None] = {"Date": None, "Creator": "carbonshift"}
_RENDER_LOCK = threading.Lock()
# Tick spacings in minutes, the smallest giving at most _MAX_TICKS ticks is used: hour ticks
# for runs of hours and days, minute ticks only for runs shorter than a couple of hours.
_TICK_MINUTES = (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440)
_MAX_TICKS = 9
# Room above the highest value, as a share of it, so that no line lies on the frame.
HEADROOM = 0.1
# Legend labels are wrapped to lines of this many characters (about 160 px at 8 pt), and the
# figure keeps this many pixels clear at its right edge.
_LEGEND_CHARS = 28
_EDGE_PX = 4.0


@dataclass(frozen=True)
class Mark:
    """A moment marked on a run chart with a vertical line and a label, e.g. a monitor stop."""

    at: datetime
    label: str


def plan_chart_svg(
    series_by_region: Mapping[str, IntensitySeries],
    chosen: Slot | None,
    *,
    title: str = "Forecast intensity per candidate region",
    width: int = 720,
    height: int = 300,
) -> str:
    """Each candidate region's forecast as a step line (the chosen region's thicker), the
    chosen run's window (or each segment of an interruptible run) shaded."""
    items = sorted(series_by_region.items())
    with _RENDER_LOCK, rc_context(_RC):
        fig, ax = _figure(width, height)
        if not items:
            ax.text(0.5, 0.5, "no forecast", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            ax.set_title(title)
            return _svg(fig)
        start = min(_utc(s.start_s) for _, s in items)
        end = max(_utc(s.end_s) for _, s in items)
        if chosen is not None:
            for i, (a, b) in enumerate(chosen.segments or [(chosen.start, chosen.end)]):
                label = f"chosen run, {chosen.region}" if i == 0 else None
                ax.axvspan(_num(a), _num(b), color=WINDOW_COLOUR, alpha=0.25, lw=0, label=label)
        for i, (region, s) in enumerate(items):
            thick = chosen is not None and region == chosen.region
            colour = COLOURS[i % len(COLOURS)]
            _step(ax, s, colour=colour, label=region, width=2.2 if thick else 1.2)
        _axes(ax, start, end, title)
        return _svg(fig)


def run_chart_svg(
    planned: IntensitySeries | None,
    actual: IntensitySeries | None,
    run_start: datetime,
    run_end: datetime,
    marks: Sequence[Mark] = (),
    checks: Sequence[tuple[datetime, float]] = (),
    *,
    title: str = "Forecast vs actual intensity over the run",
    width: int = 720,
    height: int = 300,
) -> str:
    """The forecast the run was planned on against the actual intensity, the run's window
    shaded, `marks` (monitor stops, re-plans) as labelled vertical lines and `checks` (the
    monitor's actual readings) as points. Either series may be missing: the chart says so."""
    if run_end < run_start:
        raise ValueError(
            f"run_end: {run_end.isoformat()} is before run_start {run_start.isoformat()}: "
            "pass the run's end, not its start"
        )
    with _RENDER_LOCK, rc_context(_RC):
        return _svg(
            _run_figure(planned, actual, run_start, run_end, marks, checks, title, width, height)
        )


def _run_figure(
    planned: IntensitySeries | None,
    actual: IntensitySeries | None,
    run_start: datetime,
    run_end: datetime,
    marks: Sequence[Mark],
    checks: Sequence[tuple[datetime, float]],
    title: str,
    width: int,
    height: int,
) -> Figure:
    """The run chart's figure (the caller holds the render lock and the rc context)."""
    fig, ax = _figure(width, height)
    ax.axvspan(_num(run_start), _num(run_end), color=WINDOW_COLOUR, alpha=0.25, lw=0, label="run")
    times = [run_start, run_end, *(m.at for m in marks), *(t for t, _ in checks)]
    if planned is not None:
        _step(ax, planned, colour=COLOURS[2], label=f"forecast ({planned.source})", width=1.6)
        times += [_utc(planned.start_s), _utc(planned.end_s)]
    if actual is not None:
        _step(ax, actual, colour=COLOURS[1], label=f"actual ({actual.source})", width=1.6)
        times += [_utc(actual.start_s), _utc(actual.end_s)]
    if checks:
        ax.plot(
            [_num(t) for t, _ in checks],
            [v for _, v in checks],
            "o",
            ms=3.5,
            color=COLOURS[1],
            label="actual at monitor checks",
        )
    missing = [name for name, s in (("forecast", planned), ("actual", actual)) if s is None]
    if missing:
        ax.text(
            0.01,
            0.97,
            f"no {' or '.join(missing)} intensity",
            transform=ax.transAxes,
            va="top",
            fontsize=8,
            color="#555555",
        )
    for i, m in enumerate(marks):
        ax.axvline(
            _num(m.at),
            color=MARK_COLOUR,
            lw=1.2,
            ls="--",
            label="monitor stop / re-plan" if i == 0 else None,
        )
        ax.annotate(
            m.label,
            (_num(m.at), 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, -3 - 11 * (i % 3)),
            textcoords="offset points",
            va="top",
            fontsize=7.5,
            color=MARK_COLOUR,
        )
    start, end = min(times), max(times)
    if end == start:
        end = start + timedelta(minutes=5)
    _axes(ax, start, end, title)
    return fig


def stop_marks(history: Sequence[Assessment]) -> list[Mark]:
    """A mark for each time the monitor stopped the run, from its history of assessments: a
    forecast miss (it re-plans), an interruption, or a stop at the re-plan limit."""
    return [
        Mark(_utc(a.at_s), _stop_label(a)) for a in history if a.verdict is not Verdict.CONTINUE
    ]


def _stop_label(a: Assessment) -> str:
    if a.verdict is Verdict.HALT:
        return "stopped (re-plan limit)"
    if a.forecast_g_per_kwh is None:  # no comparison made: the instance was interrupted
        return "interrupted: re-plan"
    return f"forecast miss: re-plan ({a.actual_g_per_kwh:.0f} vs {a.forecast_g_per_kwh:.0f})"


def report_chart_svg(
    report: RunReport, planned: IntensitySeries | None, actual: IntensitySeries | None
) -> str | None:
    """The run chart of a supervised run: its metered span is the run's window, its monitor's
    stops are marked. None when the run has no span (it never started)."""
    if not report.samples:
        return None
    return run_chart_svg(
        planned,
        actual,
        _utc(report.samples[0].at_s),
        _utc(report.samples[-1].at_s),
        stop_marks(report.history),
        monitor_checks(report.history),
        title=f"{report.job}: forecast vs actual intensity in {report.region}",
    )


def monitor_checks(history: Sequence[Assessment]) -> list[tuple[datetime, float]]:
    """The actual intensity the monitor read at each check, where it had one."""
    return [(_utc(a.at_s), a.actual_g_per_kwh) for a in history if a.actual_g_per_kwh is not None]


def _figure(width: int, height: int) -> tuple[Figure, Axes]:
    # SVG sizes are in points (1/72 in) and a browser draws 96 px per inch: `width` and
    # `height` are CSS pixels. The SVG canvas draws at 72 dpi (a pixel is a point), so the
    # figure is made at 72 dpi too: the sizes measured to lay it out are then those drawn.
    fig = Figure(figsize=(width / 96, height / 96), dpi=72)
    FigureCanvasSVG(fig)
    ax = fig.add_subplot()
    fig.subplots_adjust(left=0.09, right=0.74, top=0.88, bottom=0.17)
    return fig, ax


def _step(ax: Axes, s: IntensitySeries, *, colour: str, label: str, width: float) -> None:
    """A series as what it is: one value held over each step, the last step drawn to its end."""
    xs = [_num(_utc(t)) for t in [*s.times_s, s.end_s]]
    ys = [float(v) for v in s.g_per_kwh]
    ax.step(xs, [*ys, ys[-1]], where="post", color=colour, lw=width, label=label)


def _axes(ax: Axes, start: datetime, end: datetime, title: str) -> None:
    minutes = _tick_minutes(end - start)
    if minutes >= 60:
        ax.xaxis.set_major_locator(mdates.HourLocator(interval=minutes // 60, tz=UTC))  # type: ignore[no-untyped-call]
    else:
        ax.xaxis.set_major_locator(mdates.MinuteLocator(byminute=range(0, 60, minutes), tz=UTC))  # type: ignore[no-untyped-call]
    several_days = start.date() != end.date()
    # Two-line tick labels (day, time) need room above the axis label.
    ax.figure.subplots_adjust(bottom=0.23 if several_days else 0.17)
    ax.xaxis.set_major_formatter(
        mdates.DateFormatter(  # type: ignore[no-untyped-call]
            "%d %b\n%H:%M" if several_days else "%H:%M", tz=UTC
        )
    )
    ax.set_xlim(_num(start), _num(end))
    top = ax.dataLim.y1  # the lines' and points' highest value (the shaded spans add no y)
    if math.isfinite(top) and top > 0:
        # Headroom: a series at its maximum would otherwise lie on the frame's top edge.
        ax.set_ylim(0, top * (1 + HEADROOM))
    else:
        ax.set_ylim(bottom=0)
    ax.set_xlabel(f"time (UTC), from {start:%Y-%m-%d %H:%M}")
    ax.set_ylabel(f"carbon intensity ({UNITS})")
    ax.set_title(title)
    handles, labels = ax.get_legend_handles_labels()
    legend = ax.legend(
        handles,
        [_wrap_label(label) for label in labels],
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=8,
        frameon=False,
    )
    _fit_legend(ax, legend)


def _wrap_label(label: str) -> str:
    """A legend label in lines of at most _LEGEND_CHARS characters, broken after a space or a
    source's separators (":", "/", "_", "-"); a word longer than a line stays whole (the
    legend's fit makes room for it). The first line keeps the label's start, e.g. "actual (",
    so that a label still reads as what it is."""
    lines: list[str] = []
    line = ""
    for token in re.findall(r"[^:/_\- ]*[:/_\- ]?", label):
        if line and len(line) + len(token.rstrip()) > _LEGEND_CHARS:
            lines.append(line.rstrip())
            line = ""
        line += token
    if line:
        lines.append(line.rstrip())
    return "\n".join(lines)


def _fit_legend(ax: Axes, legend: Legend) -> None:
    """Narrows the axes until the legend to their right ends inside the figure: a label wider
    than the margin would otherwise be cut off at the SVG's edge. Sizes are in the figure's
    pixels, which are the SVG's points (see `_figure`)."""
    figure_w = ax.figure.bbox.width
    overflow = legend.get_window_extent().x1 - (figure_w - _EDGE_PX)
    if overflow > 0:
        box = ax.get_position()
        # The legend is anchored to the axes: narrowing them by the overflow moves it left by
        # at least as much (its 1% gap shrinks with them).
        ax.figure.subplots_adjust(right=box.x1 - overflow / figure_w)


def _tick_minutes(span: timedelta) -> int:
    total = span.total_seconds() / 60
    for minutes in _TICK_MINUTES:
        if total / minutes <= _MAX_TICKS:
            return minutes
    return _TICK_MINUTES[-1] * -(-int(total) // (_TICK_MINUTES[-1] * _MAX_TICKS))


def _svg(fig: Figure) -> str:
    out = io.StringIO()
    fig.savefig(out, format="svg", metadata=_METADATA)
    return out.getvalue()


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _num(moment: datetime) -> float:
    return float(mdates.date2num(moment))  # type: ignore[no-untyped-call]
