"""Backtests of shifting policies on recorded traces, driving the planner's own window code.

A job of `duration_s` arrives at every point of the home trace's grid while it can still finish
within `slack_s + duration_s`. Policies:
- now: run at once in the home region;
- window: the best contiguous start in `[t, t + slack]` over all traces (the planner's
  `best_starts`, the same code the planning flow runs);
- interruptible: in the best single trace, the lowest duration-worth of steps in
  `[t, t + slack + duration)` (a fraction of the next-lowest step when the duration is not a
  whole number of steps), plus one resume overhead per extra block when one is given; or the
  best contiguous window, when that is lower (one block is an interruptible plan too).

Forecast error model (`forecast_error=E`): decisions use a forecast issued at the arrival time,
`actual × (1 + σ(h)·z)`, with σ(h) = E·sqrt(h / 24) for a lead time of h hours (so E is the relative
error one day ahead) and z a standard normal AR(1) along the lead time (correlation 0.8 per hour),
drawn independently per arrival and trace from `seed`. Emissions are counted on the actual trace.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from carbonshift import scoring
from carbonshift.planner.batch import Rows, best_starts
from carbonshift.planner.grid import ForecastGrid
from carbonshift.planner.interruptible import plan_interruptible
from carbonshift.planner.windows import RangeArgmin, lowest_steps_mean, window_means
from carbonshift.series import IntensitySeries, SeriesError, common_signal
from carbonshift.units import from_epoch_s

FloatArray = npt.NDArray[np.float64]
AR1_PER_HOUR = 0.8
CHUNK_JOBS = 2048


@dataclass(frozen=True)
class Aligned:
    """Traces cut to their common span on the home trace's grid."""

    origin_s: int
    step_s: int
    values: FloatArray  # traces x steps
    series: tuple[IntensitySeries, ...]


def align(traces: Sequence[IntensitySeries]) -> Aligned:
    if not traces:
        raise SeriesError("give at least one trace (the first is the home region)")
    common_signal(traces)
    home = traces[0]
    start = max(t.start_s for t in traces)
    end = min(t.end_s for t in traces)
    step = home.step_s
    origin = home.start_s + -((home.start_s - start) // step) * step
    n = (end - origin) // step
    if n <= 0:
        raise SeriesError("the traces have no time span in common")
    values = np.vstack([t.on_grid(origin, step, n) for t in traces])
    aligned = tuple(
        IntensitySeries(origin, step, values[i], t.signal, t.source, t.zone)
        for i, t in enumerate(traces)
    )
    return Aligned(origin, step, values, aligned)


def backtest(
    traces: Sequence[IntensitySeries],
    *,
    duration_s: float,
    slack_s: float,
    resume_overhead_s: float = 0.0,
    forecast_error: float | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    if duration_s <= 0 or slack_s < 0:
        raise ValueError("duration must be > 0 and slack >= 0")
    if forecast_error is not None and resume_overhead_s > 0:
        raise ValueError("a resume overhead with a forecast error is not modelled: drop one")
    if forecast_error is not None and forecast_error < 0:
        raise ValueError("forecast error must be >= 0 (0.1 = 10% one day ahead)")
    data = align(traces)
    step = data.step_s
    n = data.values.shape[1]
    span_steps = int((slack_s + duration_s) // step)
    if span_steps < math.ceil(duration_s / step):
        # The interruptible policy picks whole steps inside slack + duration (was an IndexError).
        short_s = math.ceil(duration_s / step) * step - duration_s
        raise ValueError(
            f"slack + duration must span the job's whole {step // 60}-min steps: use a slack of "
            f"at least {short_s / 60:g} min, or a duration in whole steps"
        )
    jobs = int(np.floor((n * step - slack_s - duration_s) / step)) + 1
    if jobs <= 0:
        raise SeriesError("the common span is shorter than slack + duration: no job fits")
    arrivals = np.arange(jobs)
    actual_means = window_means(data.values, step, duration_s)

    now = actual_means[0, arrivals]
    window_idx, window_trace = _window_choice(data, arrivals, duration_s, slack_s)
    window = actual_means[window_trace, window_idx]
    interruptible = _interruptible(data, arrivals, duration_s, span_steps, resume_overhead_s)
    # As in the planner, one block (the contiguous window) is an interruptible plan too. Without
    # an overhead it matters when the duration is not whole steps: the whole steps inside
    # slack + duration (30 min jobs, 24 h slack: 24 steps) miss the step the last window start
    # (t + 24 h) runs in, so the lowest steps alone could be worse than the window.
    per_trace_window = sliding_window_view(actual_means, int(slack_s // step) + 1, axis=1)
    best_window = np.nanmin(per_trace_window[:, arrivals], axis=(0, 2))
    interruptible = np.minimum(interruptible, best_window)
    result: dict[str, Any] = {
        "jobs": jobs,
        "duration_s": duration_s,
        "slack_s": slack_s,
        "signal": data.series[0].signal.value,
        "traces": [s.zone or s.source for s in data.series],
        "start": _iso(data.origin_s),
        "end": _iso(data.origin_s + n * step),
        "policies": {
            "now": {"mean_g_per_kwh": float(now.mean())},
            "window": _policy(window, now),
            "interruptible": _policy(interruptible, now),
        },
    }
    if forecast_error is not None:
        forecasted = _with_forecast_error(
            data, arrivals, duration_s, slack_s, span_steps, forecast_error, seed, actual_means
        )
        for name, values in forecasted.items():
            perfect = result["policies"][name]
            policy = _policy(values, now)
            policy["perfect_foresight_savings"] = perfect["savings"]
            policy["share_of_perfect"] = (
                policy["savings"] / perfect["savings"] if perfect["savings"] else None
            )
            result["policies"][name] = policy
        result["forecast_error"] = {
            "error_at_24h": forecast_error,
            "seed": seed,
            "model": "actual x (1 + E*sqrt(h/24)*z), z AR(1) along lead time, 0.8 per hour",
        }
    return result


def _window_choice(
    data: Aligned, arrivals: npt.NDArray[np.int64], duration_s: float, slack_s: float
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Best contiguous start per arrival over all traces, by the planner's `best_starts`."""
    grid = ForecastGrid.build(data.series)
    r = len(data.series)
    t = data.origin_s + data.step_s * arrivals
    rows = Rows(
        job=np.repeat(arrivals, r),
        region_row=np.tile(np.arange(r, dtype=np.int64), len(t)),
        duration_s=np.full(len(t) * r, float(duration_s)),
        earliest_s=np.repeat(t, r).astype(np.float64),
        deadline_s=np.repeat(t + slack_s + duration_s, r).astype(np.float64),
        search=np.ones(len(t) * r, dtype=bool),
    )
    starts = best_starts(grid, rows)
    means = np.round(starts.mean_g_per_kwh.reshape(len(t), r), 6)
    trace = np.argmin(np.where(np.isnan(means), np.inf, means), axis=1)
    start_s = starts.start_s.reshape(len(t), r)[np.arange(len(t)), trace]
    idx = ((start_s - data.origin_s) // data.step_s).astype(np.int64)
    return idx, trace.astype(np.int64)


def _interruptible(
    data: Aligned,
    arrivals: npt.NDArray[np.int64],
    duration_s: float,
    span_steps: int,
    resume_overhead_s: float,
) -> FloatArray:
    steps = duration_s / data.step_s
    if resume_overhead_s <= 0:
        windows = sliding_window_view(data.values, span_steps, axis=1)[:, arrivals]
        return np.asarray(np.min(lowest_steps_mean(windows, steps), axis=0), dtype=np.float64)
    # With an overhead, each extra block costs run time: per-arrival greedy from the planner.
    out = np.empty(len(arrivals))
    for j, i in enumerate(arrivals):
        t0 = data.origin_s + int(i) * data.step_s
        best = np.inf
        for s in data.series:
            seg = plan_interruptible(
                s, t0, t0 + span_steps * data.step_s, duration_s, resume_overhead_s
            )
            if seg is not None:
                # Mean per unit of useful work: overhead time emits too.
                best = min(best, seg.mean_g_per_kwh * seg.run_s / duration_s)
        out[j] = best
    return out


def _with_forecast_error(
    data: Aligned,
    arrivals: npt.NDArray[np.int64],
    duration_s: float,
    slack_s: float,
    span_steps: int,
    error: float,
    seed: int,
    actual_means: FloatArray,
) -> dict[str, FloatArray]:
    rng = np.random.default_rng(seed)
    step = data.step_s
    r = len(data.series)
    lead_h = (np.arange(span_steps) + 1) * step / 3600.0
    sigma = error * np.sqrt(lead_h / 24.0)
    rho = AR1_PER_HOUR ** (step / 3600.0)
    last_start = int(slack_s // step)
    actual_windows = sliding_window_view(data.values, span_steps, axis=1)
    window_out = np.empty(len(arrivals))
    inter_out = np.empty(len(arrivals))
    steps = duration_s / step
    for c0 in range(0, len(arrivals), CHUNK_JOBS):
        chunk = arrivals[c0 : c0 + CHUNK_JOBS]
        actual = actual_windows[:, chunk]  # traces x jobs x span
        z = _ar1(rng, (r, len(chunk), span_steps), rho)
        forecast = np.clip(actual * (1.0 + sigma * z), 0.0, None)
        # Window: the planner's window maths on each arrival's own forecast.
        means = window_means(forecast.reshape(r * len(chunk), span_steps), step, duration_s)
        lo = np.zeros(r * len(chunk), dtype=np.int64)
        hi = np.full(r * len(chunk), last_start, dtype=np.int64)
        idx, key = RangeArgmin(means).query(np.arange(r * len(chunk)), lo, hi)
        key = key.reshape(r, len(chunk))
        trace = np.argmin(key, axis=0)
        start = idx.reshape(r, len(chunk))[trace, np.arange(len(chunk))]
        window_out[c0 : c0 + len(chunk)] = actual_means[trace, chunk + start]
        # Interruptible: the forecast's lowest steps, counted on the actual values.
        order = np.argsort(forecast, axis=-1, kind="stable")
        m = int(steps)
        weights = np.zeros(span_steps)
        weights[:m] = 1.0
        if steps > m:
            weights[m] = steps - m
        picked_fc = np.take_along_axis(forecast, order, axis=-1) @ weights / steps
        picked_act = np.take_along_axis(actual, order, axis=-1) @ weights / steps
        best = np.argmin(picked_fc, axis=0)
        inter_out[c0 : c0 + len(chunk)] = picked_act[best, np.arange(len(chunk))]
    return {"window": window_out, "interruptible": inter_out}


def _ar1(rng: np.random.Generator, shape: tuple[int, int, int], rho: float) -> FloatArray:
    noise = rng.standard_normal(shape)
    z = np.empty(shape)
    z[..., 0] = noise[..., 0]
    scale = np.sqrt(1.0 - rho * rho)
    for k in range(1, shape[-1]):
        z[..., k] = rho * z[..., k - 1] + scale * noise[..., k]
    return z


def _policy(values: FloatArray, now: FloatArray) -> dict[str, Any]:
    total_now = float(now.sum())
    return {
        "mean_g_per_kwh": float(values.mean()),
        "savings": scoring.savings_fraction(total_now, float(values.sum())),
    }


def _iso(epoch_s: int) -> str:
    return from_epoch_s(epoch_s).isoformat()
