"""Forecasts of many regions on one UTC time axis, for vectorised planning."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from carbonshift.planner.windows import window_means_on
from carbonshift.series import IntensitySeries, Signal, common_signal

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class ForecastGrid:
    """Every series on one time axis whose columns are cut at every point of every series.

    Column c spans `[edges_s[c], edges_s[c + 1])`. The edges are the union of all series' points
    and ends, so each series is constant within each column and `values[r, c]` is exactly series
    r's value there (NaN where it has no data), whatever each series' step and grid offset (:00,
    :30, :07, any second). When all series share one step and offset the axis is that regular grid.

    `starts[r, c]` says whether column c starts at one of series r's own points: only those (and a
    job's earliest start) are candidate starts, so another region's offset never invents extra
    candidates.
    """

    edges_s: IntArray
    values: FloatArray
    starts: BoolArray
    series: tuple[IntensitySeries, ...]
    signal: Signal

    @classmethod
    def build(
        cls, series: Sequence[IntensitySeries], start_s: int | None = None, end_s: int | None = None
    ) -> ForecastGrid:
        if not series:
            raise ValueError("no forecasts to plan on")
        signal = common_signal(series)
        assert signal is not None
        lo = min(s.start_s for s in series) if start_s is None else start_s
        hi = max(s.end_s for s in series) if end_s is None else end_s
        if hi <= lo:
            raise ValueError("the period to plan on must end after it starts")
        cuts = [np.array([lo, hi], dtype=np.int64)]
        cuts += [s.start_s + s.step_s * np.arange(len(s) + 1, dtype=np.int64) for s in series]
        edges = np.unique(np.concatenate(cuts))
        edges = edges[(edges >= lo) & (edges <= hi)]
        values = np.vstack([_on_edges(s, edges) for s in series])
        times = edges[:-1]
        starts = np.vstack(
            [
                ((times - s.start_s) % s.step_s == 0) & (times >= s.start_s) & (times < s.end_s)
                for s in series
            ]
        )
        starts &= ~np.isnan(values)
        return cls(edges, values, starts, tuple(series), signal)

    @property
    def size(self) -> int:
        return int(self.values.shape[1])

    @property
    def times_s(self) -> IntArray:
        """Start of each column."""
        return self.edges_s[:-1]

    def means(self, duration_s: float) -> FloatArray:
        """Mean over `[t_c, t_c + duration_s)` for every row and column, exact for the step
        functions; NaN where the run leaves a row's data or column c is not one of its points."""
        out = window_means_on(self.values, self.edges_s, duration_s)
        out[~self.starts] = np.nan
        return out

    def index_after(self, moment_s: float | FloatArray) -> IntArray:
        """First column starting strictly after `moment_s` (`size` when none)."""
        return np.asarray(
            np.searchsorted(self.times_s, np.asarray(moment_s), side="right"), dtype=np.int64
        )

    def index_at_or_before(self, moment_s: float | FloatArray) -> IntArray:
        """Last column starting at or before `moment_s` (-1 when none)."""
        return self.index_after(moment_s) - 1

    def time_of(self, index: int) -> int:
        return int(self.edges_s[index])


def _on_edges(s: IntensitySeries, edges: IntArray) -> FloatArray:
    """Series s's value in each column (a column never straddles two of its points)."""
    times = edges[:-1]
    inside = (times >= s.start_s) & (edges[1:] <= s.end_s)
    point = np.clip((times - s.start_s) // s.step_s, 0, len(s) - 1)
    return np.where(inside, s.g_per_kwh[point], np.nan)
