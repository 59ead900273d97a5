"""The studies' charts as SVG (matplotlib's Figure API, no pyplot state): the baseline heat-map
of emissions by hour of day x region, and the report's emissions per day against run-now (one
panel per signal).

The output is deterministic (a fixed `svg.hashsalt`, no date in the metadata) so that the same
figures give the same bytes, and text stays text (`svg.fonttype: none`): labels are searchable
and render in the Prefect UI and a browser with the page's sans-serif font.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from carbonshift.baseline import BaselineStudy
from carbonshift.charts import HEADROOM

RC: dict[Any, Any] = {  # matplotlib types its keys as a Literal of every rc name
    "svg.hashsalt": "carbonshift",
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.size": 9,
}


def _svg(fig: Figure) -> str:
    buffer = io.StringIO()
    with matplotlib.rc_context(RC):
        fig.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
    return buffer.getvalue()


def baseline_heatmap_svg(s: BaselineStudy) -> str:
    """Mean kg CO2 per run for each start hour (columns) and region (rows), values written in
    the cells; the best cell outlined."""
    with matplotlib.rc_context(RC):
        grid = np.array([r.by_hour_kg for r in s.regions])
        fig = Figure(figsize=(11, 1.2 + 0.55 * len(s.regions)))
        ax = fig.add_subplot()
        image = ax.imshow(np.ma.masked_invalid(grid), aspect="auto", cmap="YlOrRd")
        clock = "UTC" if s.clock == "utc" else "local time of each region"
        ax.set_xticks(range(24), [f"{h:02d}" for h in range(24)])
        ax.set_xlabel(f"start hour ({clock})")
        ax.set_yticks(range(len(s.regions)), [r.region for r in s.regions])
        low, high = np.nanmin(grid), np.nanmax(grid)
        for i, row in enumerate(grid):
            for h, value in enumerate(row):
                if np.isfinite(value):
                    dark = value > low + 0.6 * (high - low)
                    ax.text(
                        h,
                        i,
                        f"{value:.1f}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if dark else "black",
                    )
        region, hour, _ = s.slot("best")
        row_of = [r.region for r in s.regions].index(region)
        ax.add_patch(
            matplotlib.patches.Rectangle(
                (hour - 0.5, row_of - 0.5),
                1,
                1,
                fill=False,
                edgecolor="#1b9e77",
                linewidth=2.5,
                label="best slot",
            )
        )
        ax.legend(loc="upper left", bbox_to_anchor=(1.08, 1.0), frameon=False)
        bar = fig.colorbar(image, ax=ax, pad=0.01)
        bar.set_label("kg CO2 per run (mean)")
        p = s.profile
        ax.set_title(
            f"{p.energy_kwh:g} kWh over {p.duration_s / 3600:g} h, {s.signal} intensity, "
            f"{len(s.starts_s)} hourly starts"
        )
    return _svg(fig)


@dataclass(frozen=True)
class Panel:
    """One signal's daily figures in the report chart: kg of different signals are never drawn
    on one axis, as the report's tables never sum them."""

    label: str  # e.g. "lca intensity (location-based)"
    emitted_kg: Sequence[float]
    run_now_kg: Sequence[float | None]


def report_chart_svg(days: Sequence[date], panels: Sequence[Panel], *, title: str) -> str:
    """One panel per signal, stacked on the same days: emitted kg per day (bars, by the day a
    segment ended) and what the same runs would have emitted started at once in their home
    region (dots; only days where every run-now figure is known)."""
    with matplotlib.rc_context(RC):
        return _svg(report_figure(days, panels, title=title))


def report_figure(days: Sequence[date], panels: Sequence[Panel], *, title: str) -> Figure:
    """`report_chart_svg`'s figure (call it inside `matplotlib.rc_context(RC)`)."""
    fig = Figure(figsize=(9, 0.6 + 3.0 * max(len(panels), 1)))
    axes = fig.subplots(max(len(panels), 1), 1, sharex=True, squeeze=False)[:, 0]
    x = np.arange(len(days))
    for ax, panel in zip(axes, panels, strict=False):
        ax.bar(x, panel.emitted_kg, color="#1b9e77", label="emitted (actual intensity)")
        known = [(i, v) for i, v in enumerate(panel.run_now_kg) if v is not None]
        if known:
            ax.plot(
                [i for i, _ in known],
                [v for _, v in known],
                "o",
                color="#d95f02",
                label="run now, home region",
            )
        ax.set_ylabel("kg CO2")
        top = max([*panel.emitted_kg, *(v for _, v in known)], default=0.0)
        # Headroom, as on the run chart: the highest bar or dot never touches the frame.
        ax.set_ylim(0, top * (1 + HEADROOM) if top > 0 else None)
        ax.grid(axis="y", color="#dddddd")
        ax.set_axisbelow(True)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)  # off the bars
        ax.set_title(panel.label, loc="left", fontsize=9)
    step = max(1, len(days) // 14)
    last = axes[-1]
    last.set_xticks(x[::step], [f"{d:%m-%d}" for d in days][::step])
    last.set_xlabel("day the run segment ended (UTC)")
    fig.suptitle(title)
    return fig
