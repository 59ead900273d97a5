"""Training-run tasks: supervise one run (carbonshift.run does the work), publish its emissions,
re-plan the rest. Tasks take and return plain values; the run's rules live in the core."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from uuid import UUID

from prefect import get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from carbonshift.artifacts import artifact_key, emissions_markdown
from carbonshift.catalog import default_catalog
from carbonshift.compute import LocalCompute
from carbonshift.job import JobSpec
from carbonshift.monitor import MonitorRule
from carbonshift.planner import plan_jobs
from carbonshift.run import (
    ChainActuals,
    NothingLeft,
    NotRunnable,
    Placement,
    RunReport,
    Supervisor,
    SystemClock,
    checkpoints_for,
    placement_of,
    remaining_job,
    run_meter,
    trainer_for,
)
from carbonshift.training import Progress, TrainingContext, TrainingOutcome
from tasks.forecasts import ForecastConfig
from tasks.planning import fetch_forecasts
from tasks.scheduling import reschedule_remaining


class MonitorSettings(BaseModel):
    """The re-plan rule: during the first hour, actual intensity more than `threshold` above the
    forecast (averaged over `window_s`) stops the run and re-plans the rest."""

    threshold: float = Field(default=0.20, ge=0)
    first_hour_s: float = Field(default=3600.0, gt=0)
    window_s: float = Field(default=900.0, gt=0)
    grace_s: float = Field(default=300.0, ge=0)
    interval_s: float = Field(default=300.0, gt=0)
    max_replans: int = Field(default=2, ge=0)

    def rule(self) -> MonitorRule:
        return MonitorRule(
            self.threshold,
            self.first_hour_s,
            self.window_s,
            self.grace_s,
            self.interval_s,
            self.max_replans,
        )


class TrainingConfig(BaseModel):
    """Where checkpoints and compute state live, how the grid is watched."""

    checkpoint_store: str = Field(
        default=".carbonshift/checkpoints", description="folder or file:// URI for checkpoints"
    )
    checkpoint_every_s: float = Field(default=1800.0, gt=0)
    keep_checkpoints: int = Field(default=3, ge=1)
    compute_state_dir: str = Field(default=".carbonshift/compute")
    forecast: ForecastConfig = Field(
        default_factory=ForecastConfig, description="where actual intensity comes from"
    )
    monitor: MonitorSettings = Field(default_factory=MonitorSettings)
    options: dict[str, str] = Field(
        default_factory=dict, description="passed to the training entrypoint"
    )
    allow_fresh_start: bool = Field(
        default=False,
        description="with resume_from: start at step 0 when no valid checkpoint is there "
        "(default: fail the run)",
    )
    replans: int = Field(default=0, ge=0, description="times this job was re-planned so far")
    training_deployment: str = Field(
        default="train-model/default", description="deployment that runs the rest after a re-plan"
    )


def compute_for(config: TrainingConfig) -> LocalCompute:
    return LocalCompute(Path(config.compute_state_dir))


def release_on_hook(flow: Any, flow_run: Any, state: Any) -> None:
    """on_cancellation / on_crashed: runs in the worker's process, finds compute by run id."""
    raw = (flow_run.parameters or {}).get("config") or {}
    config = TrainingConfig.model_validate(raw)
    compute_for(config).release(str(flow_run.id))


class ProgressReporter:
    """Trainer progress into a Prefect progress artifact, at most every `every_s` seconds."""

    def __init__(self, job: str, every_s: float = 5.0) -> None:
        self.id = create_progress_artifact(
            0.0, key=artifact_key("progress", job), description=f"training progress of {job}"
        )
        self.every_s = every_s
        self.last = 0.0

    def __call__(self, progress: Progress) -> None:
        now = time.monotonic()
        if now - self.last >= self.every_s or progress.step == progress.total_steps:
            self.last = now
            update_progress_artifact(cast(UUID, self.id), round(100 * progress.fraction, 1))


@task(cache_policy=NO_CACHE)
def supervise_run(
    job: JobSpec, placement: Placement, resume_from: str | None, config: TrainingConfig, run_id: str
) -> RunReport:
    """Provision, train, watch the grid, release: the whole run, reported."""
    trainer = trainer_for(job.name, job.entrypoint)
    clock = SystemClock()
    region = default_catalog().region(placement.slot.region)
    supervisor = Supervisor(
        compute=compute_for(config),
        meter=run_meter(placement, clock.now),
        actuals=ChainActuals(config.forecast.chain(), region),
        clock=clock,
        rule=config.monitor.rule(),
    )
    checkpoints = checkpoints_for(
        config.checkpoint_store, job.name, run_id, resume_from, config.keep_checkpoints
    )
    ctx = TrainingContext(
        checkpoints,
        on_progress=ProgressReporter(job.name),
        checkpoint_every_s=config.checkpoint_every_s,
        options=config.options,
        resume_from=resume_from,
        allow_fresh_start=config.allow_fresh_start,
    )
    report = supervisor.run(job, placement, run_id, ctx, trainer, replans=config.replans)
    logger = get_run_logger()
    logger.info("ran on %s in %s; released: %s", report.instance, report.region, report.released)
    started_s = report.samples[0].at_s
    for a in report.history:
        logger.info("monitor at +%.0f s: %s (%s)", a.at_s - started_s, a.verdict.value, a.reason)
    if report.outcome is not None:
        o = report.outcome
        ended = "complete" if o.completed else o.stopped_reason
        logger.info("training ended at step %d/%d (%s)", o.step, o.total_steps, ended)
    if report.error is not None:
        logger.error("%s", report.error)
    return report


@task(cache_policy=NO_CACHE)
def publish_emissions(report: RunReport, outcome: TrainingOutcome) -> None:
    text = emissions_markdown(
        report.job, report.region, report.accounting, report.meter_label, outcome, report.stopped_by
    )
    create_markdown_artifact(
        text,
        key=artifact_key("emissions", report.job),
        description=f"energy and emissions of {report.job}",
    )


@task(cache_policy=NO_CACHE)
def replan_rest(
    job: JobSpec,
    placement: Placement,
    outcome: TrainingOutcome,
    config: TrainingConfig,
    run_id: str,
) -> tuple[bool, str]:
    """Plan the remaining work before the same deadline and schedule a run that resumes from
    the checkpoint; (scheduled?, what happened)."""
    now = datetime.now(UTC)
    try:
        rest = remaining_job(job, placement, outcome, now, default_catalog())
    except NothingLeft as e:
        return False, str(e)
    forecasts = fetch_forecasts([rest], now, config.forecast)
    (new_plan,) = plan_jobs(
        [rest], {k: s.series for k, s in forecasts.items()}, now=now, catalog=default_catalog()
    )
    try:
        placement_of(new_plan)
    except NotRunnable as e:
        return False, f"could not re-plan: {e.reason}; resume from {outcome.checkpoint_uri}"
    scheduled = reschedule_remaining(
        rest,
        new_plan,
        config.training_deployment,
        {
            "job": rest.model_dump(mode="json", by_alias=True),
            "plan": new_plan.model_dump(mode="json"),
            "resume_from": outcome.checkpoint_uri,
            "config": config.model_copy(update={"replans": config.replans + 1}).model_dump(
                mode="json"
            ),
        },
        key=f"carbonshift-{job.name}-resume-{run_id}",
    )
    return True, f"{scheduled.note}; run {scheduled.flow_run_id}"
