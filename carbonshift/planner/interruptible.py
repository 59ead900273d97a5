"""Interruptible jobs: run in the lowest-intensity steps before the deadline, paying a resume
overhead at the start of every block after the first."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from carbonshift.series import IntensitySeries

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Segments:
    """Run periods `[start_s, end_s)` in time order, the run time and its mean intensity."""

    periods: tuple[tuple[int, int], ...]
    run_s: float  # work plus resume overheads
    mean_g_per_kwh: float  # time-weighted over the run periods

    @property
    def start_s(self) -> int:
        return self.periods[0][0]

    @property
    def end_s(self) -> int:
        return self.periods[-1][1]


def plan_interruptible(
    series: IntensitySeries,
    earliest_s: int,
    deadline_s: int,
    duration_s: float,
    resume_overhead_s: float = 0.0,
) -> Segments | None:
    """Greedy: the k lowest whole steps in `[earliest_s, deadline_s)`, smallest k that works.

    A candidate set is run in time order: each block after the first first spends the resume
    overhead, the run stops as soon as the work is done, and a block too short to do any work
    after its overhead is skipped. It is a heuristic: the planner keeps the contiguous window when
    that is better (one block is a valid interruptible plan too). None when no set finishes.
    """
    step = series.step_s
    first = max(0, -((series.start_s - earliest_s) // step))
    last = min(len(series), (deadline_s - series.start_s) // step)
    if last <= first:
        return None
    values = series.g_per_kwh[first:last]
    order = np.argsort(values, kind="stable")
    prefix = np.concatenate([[0.0], np.cumsum(values)])
    origin = series.start_s + first * step
    for k in range(max(1, math.ceil(duration_s / step)), len(values) + 1):
        chosen = np.zeros(len(values), dtype=bool)
        chosen[order[:k]] = True
        found = _run(chosen, values, prefix, step, duration_s, resume_overhead_s)
        if found is not None:
            periods, run_s, weighted = found
            spans = tuple(
                (origin + a * step, origin + a * step + int(round(u))) for a, u in periods
            )
            return Segments(spans, run_s, weighted / run_s)
    return None


def _run(
    chosen: npt.NDArray[np.bool_],
    values: FloatArray,
    prefix: FloatArray,
    step: int,
    duration_s: float,
    overhead_s: float,
) -> tuple[list[tuple[int, float]], float, float] | None:
    """Run through the chosen blocks in time order: (block start, seconds used), run time, ∫."""
    done = run = weighted = 0.0
    periods: list[tuple[int, float]] = []
    for a, b in _blocks(chosen):
        cost = overhead_s if periods else 0.0
        useful = (b - a) * step - cost
        if useful <= 0:
            continue
        used = cost + min(useful, duration_s - done)
        full, rest = divmod(used, step)
        weighted += step * (prefix[a + int(full)] - prefix[a])
        if rest > 0:
            weighted += rest * values[a + int(full)]
        periods.append((a, used))
        run += used
        done += used - cost
        if done >= duration_s - 1e-9:
            return periods, run, weighted
    return None


def _blocks(chosen: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    padded = np.concatenate([[False], chosen, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]
