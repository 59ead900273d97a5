"""Vectorised window maths shared by the planner and the backtest.

`window_means` gives, for every grid start, the time-weighted mean over a run of a given duration
(the last step counts in proportion to its overlap); `window_means_on` does the same on a time
axis of uneven columns (the planner's axis for series with different offsets). `RangeArgmin`
answers "lowest mean with start in [lo, hi], earliest on ties" for many jobs at once with a sparse
table, so each query is O(1) after an O(S log S) build; `WindowSearch` picks it or a direct
gather per duration.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Means equal up to float noise are ties (the earliest start wins): compare at 1e-6 g/kWh.
TIE_DECIMALS = 6


def window_means(values: FloatArray, step_s: int, duration_s: float) -> FloatArray:
    """Mean over `[t_i, t_i + duration_s)` for each grid start `t_i`, along the last axis.

    The result has the same shape as `values`; starts whose run leaves the data or touches a NaN
    (no forecast there) are NaN.
    """
    return _Prefix(values).means(step_s, duration_s)


def window_means_on(values: FloatArray, edges_s: IntArray, duration_s: float) -> FloatArray:
    """`window_means` for columns `[edges_s[c], edges_s[c + 1])` of any widths: the mean over
    `[edges_s[c], edges_s[c] + duration_s)` of the step function the columns hold."""
    return _Prefix(values, edges_s).window(duration_s)


def regular_step(edges_s: IntArray) -> int | None:
    """The common width of the columns, or None when they differ."""
    widths = np.diff(edges_s)
    if len(widths) and np.all(widths == widths[0]):
        return int(widths[0])
    return None


class _Prefix:
    """Prefix sums of values (NaN as 0) and of NaN counts along the last axis: any window's
    mean in O(1), for as many durations as asked. With `edges_s`, columns may have any widths."""

    def __init__(self, values: FloatArray, edges_s: IntArray | None = None) -> None:
        missing = np.isnan(values)
        self.clean = np.where(missing, 0.0, values)
        zeros = np.zeros((*values.shape[:-1], 1))
        self.holes = np.concatenate([zeros, np.cumsum(missing, axis=-1)], axis=-1)
        self.edges_s = edges_s
        self.step_s = None if edges_s is None else regular_step(edges_s)
        if edges_s is None or self.step_s is not None:
            self.csum = np.concatenate([zeros, np.cumsum(self.clean, axis=-1)], axis=-1)
        else:  # uneven columns: integrate value x width (g/kWh x s)
            widths = np.diff(edges_s).astype(np.float64)
            self.csum = np.concatenate([zeros, np.cumsum(self.clean * widths, axis=-1)], axis=-1)

    def window(self, duration_s: float) -> FloatArray:
        """Window means on this prefix's own axis (`edges_s` given)."""
        assert self.edges_s is not None
        if self.step_s is not None:
            return self.means(self.step_s, duration_s)
        if duration_s <= 0:
            raise ValueError("duration_s must be > 0")
        edges = self.edges_s
        out = np.full(self.clean.shape, np.nan)
        ends = edges[:-1] + duration_s
        fits = np.flatnonzero(ends <= edges[-1])
        if len(fits) == 0:
            return out
        # Columns [c, stop) are touched; the last one, stop - 1, only up to the end of the run.
        stop = np.searchsorted(edges, ends[fits], side="left")
        last = stop - 1
        total = (
            self.csum[..., last]
            - self.csum[..., fits]
            + self.clean[..., last] * (ends[fits] - edges[last])
        )
        touched = self.holes[..., stop] - self.holes[..., fits]
        out[..., fits] = np.where(touched > 0, np.nan, total / duration_s)
        return out

    def means(self, step_s: int, duration_s: float) -> FloatArray:
        if duration_s <= 0:
            raise ValueError("duration_s must be > 0")
        n = self.clean.shape[-1]
        m, frac = _split(duration_s, step_s)
        steps_needed = m + (1 if frac > 0 else 0)
        out = np.full(self.clean.shape, np.nan)
        starts = n - steps_needed + 1
        if starts <= 0:
            return out
        total = self.csum[..., m : m + starts] - self.csum[..., :starts]
        if frac > 0:
            total = total + frac * self.clean[..., m : m + starts]
        touched = self.holes[..., steps_needed : steps_needed + starts] - self.holes[..., :starts]
        out[..., :starts] = np.where(touched > 0, np.nan, total / (m + frac))
        return out


def lowest_steps_mean(values: FloatArray, steps: float) -> FloatArray:
    """Mean of the lowest `steps` values along the last axis (a fraction of the next one counts)."""
    m = int(steps)
    frac = steps - m
    ordered = np.sort(np.where(np.isnan(values), np.inf, values), axis=-1)
    total = ordered[..., :m].sum(axis=-1)
    if frac > 0:
        total = total + frac * ordered[..., m]
    return np.asarray(total / steps, dtype=np.float64)


class RangeArgmin:
    """Earliest argmin of each row of `means` over index ranges, after one O(S log S) build."""

    def __init__(self, means: FloatArray) -> None:
        keys: FloatArray = np.atleast_2d(
            np.round(np.where(np.isnan(means), np.inf, means), TIE_DECIMALS)
        ).astype(np.float64)
        rows, cols = keys.shape
        self._keys = keys
        idx = np.broadcast_to(np.arange(cols, dtype=np.int64), (rows, cols))
        # Level k holds, for every start i, the minimum over [i, i + 2^k) and where it is.
        self._values: list[FloatArray] = [keys]
        self._index: list[IntArray] = [idx]
        width = 1
        while 2 * width <= cols:
            vals, where = self._values[-1], self._index[-1]
            left, right = vals[:, :-width], vals[:, width:]
            take_left = left <= right  # ties keep the earlier index
            self._values.append(np.where(take_left, left, right))
            self._index.append(np.where(take_left, where[:, :-width], where[:, width:]))
            width *= 2

    def query(self, rows: IntArray, lo: IntArray, hi: IntArray) -> tuple[IntArray, FloatArray]:
        """Best index in `[lo, hi]` (inclusive) of `rows`; -1 where the range holds no value."""
        rows = np.asarray(rows, dtype=np.int64)
        lo = np.asarray(lo, dtype=np.int64)
        hi = np.asarray(hi, dtype=np.int64)
        cols = self._keys.shape[1]
        lo_c = np.clip(lo, 0, cols - 1)
        hi_c = np.clip(hi, 0, cols - 1)
        empty = (hi < lo) | (hi < 0) | (lo >= cols)
        length = np.maximum(hi_c - lo_c + 1, 1)
        level = np.floor(np.log2(length)).astype(np.int64)
        best = np.empty(len(rows), dtype=np.int64)
        keys = np.empty(len(rows))
        for k in np.unique(level):
            sel = np.flatnonzero(level == k)
            vals, where = self._values[int(k)], self._index[int(k)]
            r = rows[sel]
            a = lo_c[sel]
            b = hi_c[sel] - (1 << int(k)) + 1
            take_left = vals[r, a] <= vals[r, b]
            best[sel] = np.where(take_left, where[r, a], where[r, b])
            keys[sel] = np.where(take_left, vals[r, a], vals[r, b])
        invalid = empty | ~np.isfinite(keys)
        best[invalid] = -1
        return best, np.where(invalid, np.inf, keys)


class WindowSearch:
    """Best start per row for many durations over one axis of values (regions x columns).

    Prefix sums are computed once. Per duration, a small group of rows is answered by gathering
    each row's candidate range directly; a large group builds a `RangeArgmin` table instead,
    whichever touches fewer values. The axis is a regular step or the columns' edges.
    """

    def __init__(
        self, values: FloatArray, axis: int | IntArray, valid_start: npt.NDArray[np.bool_]
    ) -> None:
        self.valid_start = valid_start
        if isinstance(axis, int | np.integer):
            n = values.shape[-1]
            axis = int(axis) * np.arange(n + 1, dtype=np.int64)
        self._prefix = _Prefix(values, np.asarray(axis, dtype=np.int64))

    def means(self, duration_s: float) -> FloatArray:
        """Window means of every row, NaN where a start is not one of the row's own points."""
        out = self._prefix.window(duration_s)
        out[~self.valid_start] = np.nan
        return out

    def best(
        self, duration_s: float, rows: IntArray, lo: IntArray, hi: IntArray
    ) -> tuple[IntArray, FloatArray, FloatArray]:
        """Earliest best start in `[lo, hi]` per row: (index or -1, tie key, exact mean)."""
        means = self.means(duration_s)
        n = means.shape[1]
        lo = np.clip(lo, 0, n)
        hi = np.minimum(hi, n - 1)
        span = int(np.max(hi - lo + 1, initial=0))
        levels = max(1, int(np.log2(max(span, 1))) + 1)
        if len(rows) * span <= means.size * levels:
            # Gather in two halves by range length, so short ranges are not padded to the longest.
            spans = hi - lo + 1
            order = np.argsort(spans, kind="stable")
            idx = np.empty(len(rows), dtype=np.int64)
            key = np.empty(len(rows))
            for part in np.array_split(order, 2 if len(rows) > 8 else 1):
                width = int(np.max(spans[part], initial=0))
                idx[part], key[part] = _gather_argmin(means, rows[part], lo[part], hi[part], width)
        else:
            idx, key = RangeArgmin(means).query(rows, lo, hi)
        exact = np.where(idx >= 0, means[rows, np.maximum(idx, 0)], np.nan)
        return idx, key, exact


def _split(duration_s: float, step_s: int) -> tuple[int, float]:
    full, part_s = divmod(float(duration_s), float(step_s))
    return int(full), part_s / step_s


def _gather_argmin(
    means: FloatArray, rows: IntArray, lo: IntArray, hi: IntArray, span: int
) -> tuple[IntArray, FloatArray]:
    if span <= 0:
        return np.full(len(rows), -1, dtype=np.int64), np.full(len(rows), np.inf)
    n = means.shape[1]
    # One flat gather from tie keys padded with an +inf column that out-of-range picks point at.
    keys = np.full((means.shape[0], n + 1), np.inf)
    keys[:, :n] = np.round(np.where(np.isnan(means), np.inf, means), TIE_DECIMALS)
    cols = lo[:, None] + np.arange(span)[None, :]
    cols = np.where(cols <= hi[:, None], cols, n)
    picked = keys.ravel()[rows[:, None] * (n + 1) + cols]
    first = np.argmin(picked, axis=1)
    key = picked[np.arange(len(rows)), first]
    idx = np.where(np.isfinite(key), lo + first, -1)
    return idx.astype(np.int64), key
