from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carbonshift.backtest import backtest
from carbonshift.series import IntensitySeries, SeriesError, Signal
from tests.helpers import T0, series_at


def _brute_force(traces: list[IntensitySeries], d_steps: int, slack_steps: int) -> dict[str, float]:
    """The contract, one job at a time, for traces on one hourly grid."""
    values = np.vstack([t.g_per_kwh for t in traces])
    n = values.shape[1]
    now, window, inter = [], [], []
    for t in range(n - slack_steps - d_steps + 1):
        now.append(values[0, t : t + d_steps].mean())
        window.append(
            min(
                values[r, s : s + d_steps].mean()
                for r in range(len(traces))
                for s in range(t, t + slack_steps + 1)
            )
        )
        inter.append(
            min(
                np.sort(values[r, t : t + slack_steps + d_steps])[:d_steps].mean()
                for r in range(len(traces))
            )
        )
    total = sum(now)
    return {
        "jobs": len(now),
        "now": float(np.mean(now)),
        "window": 1 - sum(window) / total,
        "interruptible": 1 - sum(inter) / total,
    }


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 3), st.integers(1, 4), st.integers(0, 6), st.integers(0, 2**31))
def test_matches_brute_force(n_traces: int, d_steps: int, slack_steps: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    traces = [
        series_at(rng.integers(1, 500, 24).astype(float), step_min=60, zone=f"Z{i}")
        for i in range(n_traces)
    ]
    result = backtest(traces, duration_s=d_steps * 3600, slack_s=slack_steps * 3600)
    expected = _brute_force(traces, d_steps, slack_steps)
    assert result["jobs"] == expected["jobs"]
    policies = result["policies"]
    assert policies["now"]["mean_g_per_kwh"] == pytest.approx(expected["now"])
    assert policies["window"]["savings"] == pytest.approx(expected["window"], abs=1e-9)
    assert policies["interruptible"]["savings"] == pytest.approx(
        expected["interruptible"], abs=1e-9
    )


def test_traces_cut_to_common_span_on_home_grid() -> None:
    home = series_at([100.0] * 10, step_min=60)
    other = series_at([10.0] * 40, start=T0 + timedelta(hours=2), step_min=15, zone="B")
    result = backtest([home, other], duration_s=3600, slack_s=3600)
    assert result["start"] == (T0 + timedelta(hours=2)).isoformat()
    assert result["end"] == (T0 + timedelta(hours=10)).isoformat()
    assert result["jobs"] == 7
    assert result["policies"]["window"]["mean_g_per_kwh"] == pytest.approx(10.0)


def test_zero_forecast_error_gives_perfect_foresight() -> None:
    rng = np.random.default_rng(3)
    traces = [series_at(rng.integers(1, 500, 200).astype(float), step_min=60, zone=z) for z in "AB"]
    perfect = backtest(traces, duration_s=3 * 3600, slack_s=12 * 3600)
    noisy = backtest(traces, duration_s=3 * 3600, slack_s=12 * 3600, forecast_error=0.0)
    for name in ("window", "interruptible"):
        assert noisy["policies"][name]["savings"] == pytest.approx(
            perfect["policies"][name]["savings"]
        )
        assert noisy["policies"][name]["share_of_perfect"] == pytest.approx(1.0)


def test_forecast_error_is_seeded_and_costs_savings() -> None:
    rng = np.random.default_rng(4)
    traces = [series_at(rng.integers(1, 500, 300).astype(float), step_min=60)]
    a = backtest(traces, duration_s=2 * 3600, slack_s=24 * 3600, forecast_error=0.5, seed=7)
    b = backtest(traces, duration_s=2 * 3600, slack_s=24 * 3600, forecast_error=0.5, seed=7)
    c = backtest(traces, duration_s=2 * 3600, slack_s=24 * 3600, forecast_error=0.5, seed=8)
    assert a == b
    assert a != c
    for name in ("window", "interruptible"):
        assert a["policies"][name]["share_of_perfect"] < 1.0


def test_resume_overhead_costs_the_interruptible_policy() -> None:
    traces = [series_at([10, 500, 10, 500, 10, 500, 10, 500] * 3, step_min=60)]
    free = backtest(traces, duration_s=3 * 3600, slack_s=6 * 3600)
    costly = backtest(traces, duration_s=3 * 3600, slack_s=6 * 3600, resume_overhead_s=1800)
    assert (
        costly["policies"]["interruptible"]["savings"]
        < free["policies"]["interruptible"]["savings"]
    )


def test_errors() -> None:
    short = [series_at([1.0, 2.0], step_min=60)]
    with pytest.raises(SeriesError, match="no job fits"):
        backtest(short, duration_s=3600, slack_s=3 * 3600)
    with pytest.raises(SeriesError, match="cannot be compared"):
        backtest(
            [series_at([1.0] * 9), series_at([1.0] * 9, signal=Signal.MOER)],
            duration_s=600,
            slack_s=600,
        )
    with pytest.raises(ValueError, match="duration must be > 0"):
        backtest(short, duration_s=0, slack_s=0)


def test_huge_resume_overhead_falls_back_to_one_block() -> None:
    rng = np.random.default_rng(5)
    traces = [series_at(rng.integers(1, 500, 60).astype(float), step_min=60)]
    result = backtest(traces, duration_s=3 * 3600, slack_s=8 * 3600, resume_overhead_s=48 * 3600)
    policies = result["policies"]
    assert policies["interruptible"]["savings"] == pytest.approx(policies["window"]["savings"])
