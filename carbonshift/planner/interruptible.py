"""Interruptible jobs: run in the lowest-intensity steps before the deadline, paying a resume
overhead for every block after the first."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from carbonshift.series import IntensitySeries


@dataclass(frozen=True)
class Segments:
    """Run periods `[start_s, end_s)` in time order and the intensity-weighted run time."""

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
    """Greedy lowest-steps cover of `duration_s` plus one overhead per extra block.

    Only whole forecast steps inside `[earliest_s, deadline_s)` are used. It is a heuristic: the
    planner keeps the contiguous window when that is better (one block is a valid interruptible
    plan too). None when the steps cannot cover the work.
    """
    step = series.step_s
    first = max(0, -((series.start_s - earliest_s) // step))
    last = min(len(series), (deadline_s - series.start_s) // step)
    if last <= first:
        return None
    values = series.g_per_kwh[first:last]
    order = np.argsort(values, kind="stable")
    chosen = np.zeros(len(values), dtype=bool)
    needed = duration_s
    count = 0
    while True:
        while count < len(order) and count * step < needed:
            chosen[order[count]] = True
            count += 1
        blocks = _blocks(chosen)
        needed = duration_s + (len(blocks) - 1) * resume_overhead_s
        if count * step >= needed:
            break
        if count >= len(order):
            return None
    # Only the work's worth of the last block-edge step is used: the dearest step is trimmed when it
    # sits at an edge of its block, otherwise the run ends early in its block's last step.
    spare = count * step - needed
    dearest = int(order[count - 1])
    used = np.where(chosen, float(step), 0.0)
    periods = []
    for a, b in _blocks(chosen):
        start = series.start_s + (first + a) * step
        end = series.start_s + (first + b) * step
        if a <= dearest < b and spare > 0:
            if dearest == a and b - a > 1:
                start += int(round(spare))
                used[a] -= spare
            else:
                end -= int(round(spare))
                used[b - 1] -= spare
        periods.append((int(start), int(end)))
    mean = float(np.dot(used, values) / needed)
    return Segments(tuple(periods), needed, mean)


def _blocks(chosen: np.ndarray) -> list[tuple[int, int]]:
    padded = np.concatenate([[False], chosen, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]
