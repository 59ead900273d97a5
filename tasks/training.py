"""Training-run tasks: supervise one run (carbonshift.run does the work), publish its emissions,
re-plan the rest. Tasks take and return plain values; the run's rules live in the core."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import cast
from uuid import UUID

from prefect import get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import ObjectNotFound

from carbonshift import ledger
from carbonshift.accounting import outcome_of, restate, segment_of, settle
from carbonshift.artifacts import artifact_key, emissions_markdown
from carbonshift.catalog import default_catalog
from carbonshift.checkpoint import open_store
from carbonshift.config import TrainingConfig
from carbonshift.job import JobSpec
from carbonshift.plan import runnable
from carbonshift.planner import plan_jobs
from carbonshift.run import (
    ChainActuals,
    NothingLeft,
    NotRunnable,
    Placement,
    RunReport,
    remaining_job,
)
from carbonshift.runs import RunInputs, run_training
from carbonshift.series import IntensitySeries
from carbonshift.training import Progress, TrainingOutcome
from tasks.clouds import cloud_access
from tasks.forecasts import chain_for
from tasks.planning import fetch_forecasts
from tasks.scheduling import reschedule_remaining


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
    """Provision, train, watch the grid, release: the whole run (on the next planned option
    when a provider has no capacity), reported."""
    chain = chain_for(config.forecast)
    report = run_training(
        RunInputs(
            job=job,
            placement=placement,
            run_id=run_id,
            resume_from=resume_from,
            config=config,
            catalog=default_catalog(),
            actuals_for=lambda region: ChainActuals(chain, region),
            on_progress=ProgressReporter(job.name),
            access=cloud_access(config),
        )
    )
    logger = get_run_logger()
    for refused in report.refused:
        logger.warning("no capacity: %s", refused)
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
    return settle_run(report, job, placement, config)


def settle_run(
    report: RunReport, job: JobSpec, placement: Placement, config: TrainingConfig
) -> RunReport:
    """The run's ledger record, on actual intensity fetched now, written to the checkpoint
    store (a re-plan that cannot be scheduled restates it); the report carries it."""
    logger = get_run_logger()
    chain, catalog = chain_for(config.forecast), default_catalog()

    def actuals(region: str, start_s: float, end_s: float) -> IntensitySeries | None:
        return ChainActuals(chain, catalog.region(region)).actuals(start_s, end_s)

    segment = segment_of(
        report,
        placement,
        catalog,
        spot=job.interruptible,
        outcome=outcome_of(report),
        job_id=config.job_id,
        previous_run_id=config.previous_run_id,
        submitted_at=config.submitted_at,
    )
    record = settle(segment, actuals, datetime.now(UTC))
    try:
        store, _ = open_store(config.checkpoint_store)
        key = ledger.append(store, record)
    except Exception as e:  # noqa: BLE001 - the run is done; a lost record is reported
        logger.error("run ledger not written to %s: %s", config.checkpoint_store, e)
    else:
        logger.info("run ledger: %s/%s", config.checkpoint_store, key)
    return report.model_copy(update={"ledger": record})


@task(cache_policy=NO_CACHE)
def publish_emissions(
    report: RunReport, outcome: TrainingOutcome | None, rescheduled: bool | None = None
) -> None:
    """The per-run table: energy by device, PUE, emissions, counterfactuals, savings, delay,
    cost (the run's ledger record, written when the run was settled) — for a failed run too.
    `rescheduled` False: the re-plan could not schedule the rest (the record says stopped)."""
    record = report.ledger
    if record is None:
        get_run_logger().warning("no ledger record for run %s: nothing to publish", report.run_id)
        return
    if rescheduled is False and record.outcome == "rescheduled":
        record = record.model_copy(update={"outcome": "stopped"})  # as replan_rest restated it
    text = emissions_markdown(record, report.meter_label, outcome, report.stopped_by)
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
    started_step: int = 0,
) -> tuple[bool, str]:
    """Plan the remaining work before the same deadline and schedule a run that resumes from
    the checkpoint; (scheduled?, what happened)."""
    now = datetime.now(UTC)
    try:
        rest = remaining_job(job, placement, outcome, now, default_catalog(), started_step)
    except NothingLeft as e:
        _restate_stopped(config, run_id, now)
        return False, str(e)
    forecasts = fetch_forecasts([rest], now, config.forecast)
    (new_plan,) = plan_jobs(
        [rest], {k: s.series for k, s in forecasts.items()}, now=now, catalog=default_catalog()
    )
    try:
        feasible = runnable(new_plan)
    except NotRunnable as e:
        _restate_stopped(config, run_id, now)
        return False, f"could not re-plan: {e}; resume from {outcome.checkpoint_uri}"
    # The rest runs in the pool of the region it was re-planned into (routes carried in).
    deployment = config.deployment_for(feasible.chosen.region)
    try:
        scheduled = reschedule_remaining(
            rest,
            feasible,
            deployment,
            {
                "job": rest.model_dump(mode="json", by_alias=True),
                "plan": feasible.model_dump(mode="json"),
                "resume_from": outcome.checkpoint_uri,
                "config": config.model_copy(
                    update={
                        "replans": config.replans + 1,
                        "training_deployment": deployment,
                        # The run ledger links the segments of one job.
                        "job_id": config.job_id or run_id,
                        "previous_run_id": run_id,
                        "submitted_at": config.submitted_at or placement.explanation.now_home.start,
                    }
                ).model_dump(mode="json"),
            },
            key=f"carbonshift-{job.name}-resume-{run_id}",
        )
    except ObjectNotFound:  # e.g. `carbonshift train` on a server without the deployment
        _restate_stopped(config, run_id, now)
        return False, (
            f"could not schedule the rest: no deployment {deployment} on this "
            f"server; resume from {outcome.checkpoint_uri}"
        )
    return True, f"{scheduled.note}; run {scheduled.flow_run_id}"


def _restate_stopped(config: TrainingConfig, run_id: str, now: datetime) -> None:
    """The segment was recorded as rescheduled when it stopped; no rest was scheduled."""
    try:
        store, _ = open_store(config.checkpoint_store)
        restate(store, run_id, "stopped", now)
    except Exception as e:  # noqa: BLE001 - the re-plan's own outcome matters more
        get_run_logger().error("run ledger not restated for %s: %s", run_id, e)
