"""Flow `plan-training`: plan the job queue against forecasts and schedule training runs."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow
from pydantic import BaseModel, Field

from carbonshift.artifacts import Scheduled
from carbonshift.job import JobSpec
from tasks.forecasts import ForecastConfig
from tasks.planning import fetch_forecasts, load_queue, plan_queue, publish_plan_artifacts
from tasks.scheduling import schedule_runs
from tasks.training import TrainingConfig

DEFAULT_QUEUE = "deployments/jobs.yaml"


class PlanningConfig(BaseModel):
    """How the planner fetches forecasts and where it schedules training runs."""

    forecast: ForecastConfig = Field(default_factory=ForecastConfig)
    training_deployment: str = Field(
        default="train-model/default", description="deployment that runs each job"
    )
    schedule: bool = Field(default=True, description="false: plan and publish artifacts only")
    training: TrainingConfig | None = Field(
        default=None, description="config for the training runs it schedules (default: theirs)"
    )


@flow(name="plan-training")
def plan_training(
    jobs: list[JobSpec] | None = None,
    queue_file: str | None = DEFAULT_QUEUE,
    config: PlanningConfig | None = None,
    now: datetime | None = None,
) -> list[Scheduled]:
    """Plan every job in the queue and schedule its training run at the chosen slot.

    Args:
        jobs: jobs to plan besides (or instead of) the queue file.
        queue_file: YAML job queue, relative to the project folder; empty for none.
        config: forecast providers and the training deployment.
        now: plan as of this moment (UTC); empty means now.
    """
    config = config or PlanningConfig()
    now = now or datetime.now(UTC)
    queue = load_queue(queue_file, jobs)
    forecasts = fetch_forecasts(queue.jobs, now, config.forecast)
    plans = plan_queue(queue, forecasts, now)
    training = config.training.model_dump(mode="json") if config.training else None
    scheduled = (
        schedule_runs(plans, queue.jobs, config.training_deployment, training)
        if config.schedule
        else {}
    )
    publish_plan_artifacts(plans, scheduled, forecasts, queue.jobs)
    return list(scheduled.values())
