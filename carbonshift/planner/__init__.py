"""The planner: pure functions of forecasts, jobs and `now`."""

from carbonshift.planner.choose import (
    ScoredQueue,
    evaluate,
    forecasts_for,
    plan_jobs,
    refused,
    score_jobs,
)
from carbonshift.planner.grid import ForecastGrid
from carbonshift.planner.interruptible import Segments, plan_interruptible
from carbonshift.planner.static import static_start_s
from carbonshift.planner.windows import RangeArgmin, lowest_steps_mean, window_means

__all__ = [
    "ForecastGrid",
    "RangeArgmin",
    "ScoredQueue",
    "Segments",
    "evaluate",
    "forecasts_for",
    "lowest_steps_mean",
    "plan_interruptible",
    "plan_jobs",
    "refused",
    "score_jobs",
    "static_start_s",
    "window_means",
]
