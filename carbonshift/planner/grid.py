"""Forecasts of many regions aligned on one UTC grid, for vectorised planning."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from carbonshift.series import IntensitySeries, Signal, common_signal

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class ForecastGrid:
    """Row r is `series[r]` resampled (time-weighted) onto the finest step; NaN where no data.

    `starts[r, i]` says whether grid point i is one of series r's own points: only those (and a
    job's earliest start) are candidate starts, so upsampling never invents extra candidates.
    """

    origin_s: int
    step_s: int
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
        step = min(s.step_s for s in series)
        lo = min(s.start_s for s in series) if start_s is None else start_s
        hi = max(s.end_s for s in series) if end_s is None else end_s
        origin = (lo // step) * step
        n = max(1, -((origin - hi) // step))
        values = np.vstack([s.on_grid(origin, step, n) for s in series])
        times = origin + step * np.arange(n, dtype=np.int64)
        starts = np.vstack([(times - s.start_s) % s.step_s == 0 for s in series])
        starts &= ~np.isnan(values)
        return cls(origin, step, values, starts, tuple(series), signal)

    @property
    def size(self) -> int:
        return int(self.values.shape[1])

    def index_after(self, moment_s: float | npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        """First grid index strictly after `moment_s`."""
        return np.asarray(
            np.floor((np.asarray(moment_s) - self.origin_s) / self.step_s) + 1, dtype=np.int64
        )

    def index_at_or_before(
        self, moment_s: float | npt.NDArray[np.float64]
    ) -> npt.NDArray[np.int64]:
        return np.asarray(
            np.floor((np.asarray(moment_s) - self.origin_s) / self.step_s), dtype=np.int64
        )

    def time_of(self, index: int) -> int:
        return self.origin_s + self.step_s * index
