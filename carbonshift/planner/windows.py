"""Vectorised window maths shared by the planner and the backtest.

`window_means` gives, for every grid start, the time-weighted mean over a run of a given duration
(the last step counts in proportion to its overlap). `best_in_ranges` answers "lowest mean with
start in [lo, hi], earliest on ties" for many jobs at once with a sparse table, so each query is
O(1) after an O(S log S) build per duration.
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
    if duration_s <= 0:
        raise ValueError("duration_s must be > 0")
    n = values.shape[-1]
    full, part_s = divmod(float(duration_s), float(step_s))
    m = int(full)
    frac = part_s / step_s
    steps_needed = m + (1 if frac > 0 else 0)
    out = np.full(values.shape, np.nan)
    if steps_needed > n:
        return out
    missing = np.isnan(values)
    clean = np.where(missing, 0.0, values)
    zeros = np.zeros((*values.shape[:-1], 1))
    csum = np.concatenate([zeros, np.cumsum(clean, axis=-1)], axis=-1)
    holes = np.concatenate([zeros, np.cumsum(missing, axis=-1)], axis=-1)
    starts = n - steps_needed + 1
    total = csum[..., m : m + starts] - csum[..., :starts]
    if frac > 0:
        total = total + frac * clean[..., m : m + starts]
    touched = holes[..., steps_needed : steps_needed + starts] - holes[..., :starts]
    means = total / (m + frac)
    out[..., :starts] = np.where(touched > 0, np.nan, means)
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
        keyed = np.round(np.where(np.isnan(means), np.inf, means), TIE_DECIMALS)
        self._keys: FloatArray = np.atleast_2d(keyed).astype(np.float64)
        rows, cols = self._keys.shape
        idx = np.broadcast_to(np.arange(cols, dtype=np.int64), (rows, cols)).copy()
        self._levels = [idx]
        width = 1
        while 2 * width <= cols:
            prev = self._levels[-1]
            left = prev[:, : cols - 2 * width + 1]
            right = prev[:, width : cols - width + 1]
            take_left = self._take(left) <= self._take(right)
            self._levels.append(np.where(take_left, left, right))
            width *= 2

    def _take(self, idx: IntArray) -> FloatArray:
        return np.asarray(np.take_along_axis(self._keys, idx, axis=1), dtype=np.float64)

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
        for k in np.unique(level):
            sel = level == k
            table = self._levels[int(k)]
            r = rows[sel]
            a = table[r, lo_c[sel]]
            b = table[r, hi_c[sel] - (1 << int(k)) + 1]
            best[sel] = np.where(self._keys[r, a] <= self._keys[r, b], a, b)
        keys = self._keys[rows, best]
        invalid = empty | ~np.isfinite(keys)
        best[invalid] = -1
        return best, np.where(invalid, np.inf, keys)
