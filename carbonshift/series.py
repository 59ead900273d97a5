"""Carbon-intensity time series: a regular UTC grid of g CO2eq/kWh values.

A value at grid point `t` holds for `[t, t + step)`. Everything else — window means, resampling,
alignment — is computed from the exact integral of that step function, so partial overlaps count
in proportion to their duration.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from carbonshift.units import from_epoch_s, to_epoch_s

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# 1-minute steps serve short-horizon feeds and end-to-end tests; the providers publish 5 to 60.
ALLOWED_STEPS_S = (60, 300, 900, 1800, 3600)
# The source label of a series that is the static default (a zone's annual mean), not a forecast.
STATIC_SOURCE = "static"
MAX_G_PER_KWH = 2000.0


class Signal(StrEnum):
    """What a value means. Series of different signals are never compared."""

    LCA = "lca"  # average, lifecycle emission factors
    DIRECT = "direct"  # average, direct (combustion) emission factors
    MOER = "moer"  # marginal operating emissions rate


class SeriesError(ValueError):
    """A series cannot be built or used as asked; the message names the point and the fix."""


class SignalMismatch(SeriesError):
    pass


class CoverageError(SeriesError):
    pass


@dataclass(frozen=True)
class Fill:
    """Points that were not in the data and were filled by linear interpolation."""

    start_s: int
    points: int


@dataclass(frozen=True, eq=False)
class IntensitySeries:
    start_s: int
    step_s: int
    g_per_kwh: FloatArray
    signal: Signal
    source: str
    zone: str = ""
    fills: tuple[Fill, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.step_s not in ALLOWED_STEPS_S:
            raise SeriesError(
                f"resolution {self.step_s}s is not supported: use 1, 5, 15, 30 or 60 minutes"
            )
        values = np.asarray(self.g_per_kwh, dtype=np.float64)
        _check_values(values, self.start_s, self.step_s)
        values.setflags(write=False)
        object.__setattr__(self, "g_per_kwh", values)

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_points(
        cls,
        times: Sequence[datetime] | Sequence[int] | npt.NDArray[Any],
        values: Sequence[float | None] | npt.NDArray[Any],
        *,
        signal: Signal | str,
        source: str,
        zone: str = "",
        step_s: int | None = None,
        fill_gaps_up_to: int = 0,
    ) -> IntensitySeries:
        """Build a series from timestamped points, validating as a careful user would.

        Intervals shorter than the resolution (mixed 15/30-minute data, say) are resampled onto the
        grid by time weighting. Missing points are an error unless `fill_gaps_up_to` allows filling
        that many consecutive points by linear interpolation; fills are recorded on the series.
        """
        times_s = _as_epoch_array(times)
        vals = _as_value_array(values, times_s)
        if len(times_s) != len(vals):
            raise SeriesError(f"{len(times_s)} timestamps but {len(vals)} values")
        if len(times_s) == 0:
            raise SeriesError("the series is empty: at least one point is needed")
        _check_order(times_s)
        _check_values(vals, times_s)
        diffs = np.diff(times_s)
        step = int(step_s) if step_s is not None else _infer_step(diffs)
        if step not in ALLOWED_STEPS_S:
            raise SeriesError(
                f"resolution {step}s is not supported: resample the data onto 1, 5, 15, 30 or "
                "60-minute steps"
            )
        times_s, vals, fills = _fill_gaps(times_s, vals, step, fill_gaps_up_to)
        sig = Signal(signal)
        if np.all(np.diff(times_s) == step):
            return cls(int(times_s[0]), step, vals, sig, source, zone, fills)
        # Mixed resolution: each point holds until the next one; resample by time weighting.
        bounds = np.append(times_s, times_s[-1] + step)
        start = int(times_s[0])
        n = int((bounds[-1] - start) // step)
        grid = start + step * np.arange(n + 1, dtype=np.int64)
        integral = np.concatenate([[0.0], np.cumsum(vals * np.diff(bounds))])
        resampled = np.diff(np.interp(grid, bounds, integral)) / step
        return cls(start, step, resampled, sig, source, zone, fills)

    # -- views ---------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.g_per_kwh)

    @property
    def end_s(self) -> int:
        """End of the last point's interval (exclusive)."""
        return self.start_s + self.step_s * len(self)

    @property
    def times_s(self) -> IntArray:
        return self.start_s + self.step_s * np.arange(len(self), dtype=np.int64)

    @property
    def start(self) -> datetime:
        return from_epoch_s(self.start_s)

    @property
    def end(self) -> datetime:
        return from_epoch_s(self.end_s)

    def integral_knots(self) -> tuple[IntArray, FloatArray]:
        """Grid boundaries and the cumulative integral (g/kWh × s) at each of them (read-only:
        computed once per series, which the planner asks for once per job)."""
        return self._integral

    @cached_property
    def _integral(self) -> tuple[IntArray, FloatArray]:
        knots = self.start_s + self.step_s * np.arange(len(self) + 1, dtype=np.int64)
        integral = np.concatenate([[0.0], np.cumsum(self.g_per_kwh * self.step_s)])
        knots.setflags(write=False)
        integral.setflags(write=False)
        return knots, integral

    def covers(self, start_s: float, end_s: float) -> bool:
        return self.start_s <= start_s and end_s <= self.end_s

    def mean_over(self, start_s: float, end_s: float) -> float:
        """Time-weighted mean intensity over `[start_s, end_s)`."""
        if end_s <= start_s:
            raise SeriesError("the period must end after it starts")
        if not self.covers(start_s, end_s):
            raise CoverageError(
                f"{self.zone or self.source}: data covers {self.start.isoformat()} to "
                f"{self.end.isoformat()}, not {from_epoch_s(start_s).isoformat()} to "
                f"{from_epoch_s(end_s).isoformat()}"
            )
        knots, integral = self.integral_knots()
        area = np.interp([start_s, end_s], knots, integral)
        return float((area[1] - area[0]) / (end_s - start_s))

    def slice(self, start_s: float, end_s: float) -> IntensitySeries:
        """The grid points whose intervals overlap `[start_s, end_s)`."""
        first, last = self.span(start_s, end_s)
        return replace(
            self,
            start_s=self.start_s + first * self.step_s,
            g_per_kwh=self.g_per_kwh[first:last],
        )

    def span(self, start_s: float, end_s: float) -> tuple[int, int]:
        """The indices `[first, last)` of the grid points `slice` keeps (no series built)."""
        first = max(0, int((start_s - self.start_s) // self.step_s))
        last = min(len(self), int(-((self.start_s - end_s) // self.step_s)))
        if last <= first:
            raise CoverageError(f"{self.zone or self.source}: no data in the requested period")
        return first, last

    def shifted(self, offset_s: int, source: str | None = None) -> IntensitySeries:
        return replace(self, start_s=self.start_s + offset_s, source=source or self.source)

    def resample(self, step_s: int) -> IntensitySeries:
        """Time-weighted resampling onto `step_s`; the last partial interval is dropped."""
        if step_s == self.step_s:
            return self
        n = (self.end_s - self.start_s) // step_s
        if n == 0:
            raise SeriesError(f"the series is shorter than one {step_s}s step")
        return replace(self, step_s=step_s, g_per_kwh=self.on_grid(self.start_s, step_s, n))

    def on_grid(self, grid_start_s: int, step_s: int, n: int) -> FloatArray:
        """Time-weighted means on an arbitrary grid; NaN where the series does not cover a step."""
        knots, integral = self.integral_knots()
        edges = grid_start_s + step_s * np.arange(n + 1, dtype=np.int64)
        out = np.diff(np.interp(edges, knots, integral)) / step_s
        out[(edges[:-1] < self.start_s) | (edges[1:] > self.end_s)] = np.nan
        return out

    def require_signal(self, signal: Signal) -> None:
        if self.signal != signal:
            raise SignalMismatch(
                f"{self.zone or self.source} is a {self.signal.value} series; it cannot be "
                f"compared with {signal.value} series: fetch every region with the same signal"
            )


def common_signal(series: Sequence[IntensitySeries]) -> Signal | None:
    """The one signal all series share; raises when they mix signals."""
    if not series:
        return None
    first = series[0].signal
    for s in series[1:]:
        s.require_signal(first)
    return first


# -- validation helpers ------------------------------------------------------------------------


def _as_epoch_array(times: Sequence[datetime] | Sequence[int] | npt.NDArray[Any]) -> IntArray:
    if isinstance(times, np.ndarray) and np.issubdtype(times.dtype, np.datetime64):
        return times.astype("datetime64[s]").astype(np.int64)
    out = [to_epoch_s(t) if isinstance(t, datetime) else int(t) for t in times]
    return np.asarray(out, dtype=np.int64)


def _as_value_array(
    values: Sequence[float | None] | npt.NDArray[Any], times_s: IntArray
) -> FloatArray:
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values):
        if v is None:
            raise SeriesError(
                f"value {i} ({_when(times_s, i)}) is missing: give every time a g/kWh value"
            )
        out[i] = float(v)
    return out


def _when(times_s: IntArray, i: int) -> str:
    return from_epoch_s(int(times_s[i])).isoformat() if i < len(times_s) else "?"


def _check_order(times_s: IntArray) -> None:
    diffs = np.diff(times_s)
    dup = np.flatnonzero(diffs == 0)
    if len(dup):
        i = int(dup[0]) + 1
        raise SeriesError(
            f"timestamp {i} ({_when(times_s, i)}) is a duplicate of the one before: "
            "keep one value per timestamp"
        )
    back = np.flatnonzero(diffs < 0)
    if len(back):
        i = int(back[0]) + 1
        raise SeriesError(
            f"timestamps are not sorted: point {i} ({_when(times_s, i)}) comes before "
            f"point {i - 1} ({_when(times_s, i - 1)}): sort the data by time"
        )


def _check_values(values: FloatArray, start_or_times: int | IntArray, step_s: int = 0) -> None:
    def when(i: int) -> str:
        if isinstance(start_or_times, np.ndarray):
            return _when(start_or_times, i)
        return from_epoch_s(start_or_times + step_s * i).isoformat()

    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        i = int(bad[0])
        raise SeriesError(
            f"value {i} ({when(i)}) is {values[i]}, not a finite number: give every time a "
            "g/kWh value"
        )
    bad = np.flatnonzero(values < 0)
    if len(bad):
        i = int(bad[0])
        raise SeriesError(
            f"value {i} ({when(i)}) is negative ({values[i]} g/kWh): intensities are >= 0"
        )
    bad = np.flatnonzero(values > MAX_G_PER_KWH)
    if len(bad):
        i = int(bad[0])
        raise SeriesError(
            f"value {i} ({when(i)}) is {values[i]} g/kWh, above {MAX_G_PER_KWH:.0f}: "
            "check the units (lbs/MWh must be converted to g/kWh)"
        )


def _infer_step(diffs: IntArray) -> int:
    if len(diffs) == 0:
        raise SeriesError("a single point has no resolution: give at least two points")
    steps, counts = np.unique(diffs, return_counts=True)
    allowed = np.isin(steps, ALLOWED_STEPS_S)
    if not allowed.any():
        raise SeriesError(
            f"cannot tell the resolution: points are mostly {int(steps[np.argmax(counts)])}s "
            "apart: resample the data onto 1, 5, 15, 30 or 60-minute steps"
        )
    # The most common interval; on a tie the coarser one, so mixed data never reads as gappy.
    candidates, tallies = steps[allowed], counts[allowed]
    return int(candidates[tallies == tallies.max()].max())


def _fill_gaps(
    times_s: IntArray, values: FloatArray, step_s: int, fill_up_to: int
) -> tuple[IntArray, FloatArray, tuple[Fill, ...]]:
    diffs = np.diff(times_s)
    gaps = np.flatnonzero(diffs > step_s)
    if len(gaps) == 0:
        return times_s, values, ()
    fills: list[Fill] = []
    new_t: list[IntArray] = []
    new_v: list[FloatArray] = []
    prev = 0
    for g in gaps:
        gi = int(g)
        gap_s = int(diffs[gi])
        missing = gap_s // step_s - 1
        if gap_s % step_s or missing > fill_up_to:
            raise SeriesError(
                f"gap of {gap_s // 60} min between {_when(times_s, gi)} and "
                f"{_when(times_s, gi + 1)} ({gap_s / step_s - 1:g} missing steps of "
                f"{step_s // 60} min): add the missing data"
            )
        new_t.append(times_s[prev : gi + 1])
        new_v.append(values[prev : gi + 1])
        k = np.arange(1, missing + 1)
        new_t.append(times_s[gi] + step_s * k)
        new_v.append(values[gi] + (values[gi + 1] - values[gi]) * k / (missing + 1))
        fills.append(Fill(int(times_s[gi]) + step_s, missing))
        prev = gi + 1
    new_t.append(times_s[prev:])
    new_v.append(values[prev:])
    return np.concatenate(new_t), np.concatenate(new_v), tuple(fills)
