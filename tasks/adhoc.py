"""One job planned to start now (`carbonshift train`)."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import task
from prefect.cache_policies import NO_CACHE

from carbonshift.catalog import default_catalog
from carbonshift.config import TrainingConfig
from carbonshift.job import JobSpec
from carbonshift.plan import FeasiblePlan, runnable
from carbonshift.planner import plan_jobs
from tasks.planning import fetch_forecasts


@task(cache_policy=NO_CACHE)
def plan_now(job: JobSpec, config: TrainingConfig) -> FeasiblePlan:
    """The job (urgent: it starts now) planned on the forecasts of its candidate regions;
    NotRunnable when no option fits."""
    now = datetime.now(UTC)
    forecasts = fetch_forecasts([job], now, config.forecast)
    (plan,) = plan_jobs(
        [job], {k: s.series for k, s in forecasts.items()}, now=now, catalog=default_catalog()
    )
    return runnable(plan)
