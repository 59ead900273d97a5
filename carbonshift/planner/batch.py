"""The vectorised core: best start for every (job, region, instance type) row at once.

A row's candidate starts are the job's earliest start and every point of the region's forecast
after it, up to `deadline - duration`, wherever the points fall (:00, :30, :07, any second) and
wherever the earliest start falls between them. Because energy and cost do not depend on the
start, the best start of a row is the one with the lowest time-weighted mean intensity; the
objective (emissions, or cost + carbon price) only ranks rows against each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from carbonshift.planner.grid import ForecastGrid
from carbonshift.planner.windows import TIE_DECIMALS, WindowSearch

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Rows:
    """One row per (job, candidate); `region_row` is the grid row, -1 for no forecast."""

    job: IntArray
    region_row: IntArray
    duration_s: FloatArray
    earliest_s: FloatArray
    deadline_s: FloatArray
    search: BoolArray  # False for urgent jobs: only the earliest start is a candidate


@dataclass(frozen=True)
class Starts:
    start_s: FloatArray
    mean_g_per_kwh: FloatArray  # NaN where the forecast covers no full run in the window
    coverage: FloatArray  # share of [earliest, deadline] the row's forecast covers


def best_starts(grid: ForecastGrid | None, rows: Rows) -> Starts:
    n = len(rows.job)
    start = np.full(n, np.nan)
    mean = np.full(n, np.nan)
    coverage = np.zeros(n)
    if grid is None:
        return Starts(start, mean, coverage)
    has = rows.region_row >= 0
    e = rows.earliest_s
    d = rows.duration_s

    # The earliest start itself, computed exactly from each series' integral.
    key_e = np.full(n, np.inf)
    for r in np.unique(rows.region_row[has]):
        sel = np.flatnonzero(rows.region_row == r)
        series = grid.series[int(r)]
        knots, integral = series.integral_knots()
        ends = e[sel] + d[sel]
        ok = (e[sel] >= series.start_s) & (ends <= series.end_s) & (ends <= rows.deadline_s[sel])
        area = np.interp(ends, knots, integral) - np.interp(e[sel], knots, integral)
        m = np.where(ok, area / d[sel], np.nan)
        mean[sel] = m
        start[sel] = np.where(ok, e[sel], np.nan)
        key_e[sel] = np.where(ok, np.round(m, TIE_DECIMALS), np.inf)
        lo = np.maximum(e[sel], series.start_s)
        hi = np.minimum(rows.deadline_s[sel], series.end_s)
        coverage[sel] = np.clip((hi - lo) / (rows.deadline_s[sel] - e[sel]), 0.0, 1.0)

    # Every forecast point after it, one duration at a time over the shared prefix sums.
    search = np.flatnonzero(has & rows.search)
    lo_idx = grid.index_after(e[search])
    hi_idx = grid.index_at_or_before(rows.deadline_s[search] - d[search])
    finder = WindowSearch(grid.values, grid.edges_s, grid.starts)
    durations, groups = np.unique(d[search], return_inverse=True)
    order = np.argsort(groups, kind="stable")
    bounds = np.searchsorted(groups[order], np.arange(len(durations) + 1))
    for g, duration in enumerate(durations):
        sel = order[bounds[g] : bounds[g + 1]]
        target = search[sel]
        idx, key, exact = finder.best(
            float(duration), rows.region_row[target], lo_idx[sel], hi_idx[sel]
        )
        better = key < key_e[target]  # ties keep the earlier start: the earliest start
        chosen = target[better]
        start[chosen] = grid.times_s[idx[better]]
        mean[chosen] = exact[better]
    return Starts(start, mean, coverage)
