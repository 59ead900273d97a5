"""Backtest policies that must be ordered: an interruptible job may run as one block, so its
policy is never worse than the contiguous window, whatever the duration (30 min jobs on hourly
traces: the whole steps inside slack + duration used to miss the step the last window runs in)."""

from __future__ import annotations

import numpy as np
import pytest

from carbonshift.backtest import backtest
from carbonshift.traces import bundled_traces_dir, read_trace
from tests.helpers import series_at

GB = bundled_traces_dir() / "GB_2023_hourly.csv"


@pytest.mark.parametrize("duration_s", [0.5, 1800.0, 5400.0, 3600.0 * 4, 3600.0 * 2.25])
def test_interruptible_is_never_worse_than_the_window_on_a_real_trace(duration_s: float) -> None:
    result = backtest([read_trace(GB)], duration_s=duration_s, slack_s=86400.0)
    policies = result["policies"]
    assert (
        policies["interruptible"]["mean_g_per_kwh"]
        <= policies["window"]["mean_g_per_kwh"] + 1e-9
    )


def test_a_clean_step_only_the_window_reaches_counts_for_interruptible() -> None:
    """Hourly trace, 30 min job, 2 h slack: from 00:00 the window may start at 02:00 and run
    in the 02:00 step (10 g/kWh); the whole steps inside 2.5 h are 00:00 and 01:00 only."""
    values = [100.0, 100.0, 10.0, 100.0, 100.0, 100.0]
    result = backtest([series_at(values, step_min=60)], duration_s=1800.0, slack_s=7200.0)
    first_window = result["policies"]["window"]["mean_g_per_kwh"]
    assert result["policies"]["interruptible"]["mean_g_per_kwh"] == pytest.approx(first_window)
    assert np.isfinite(first_window)
