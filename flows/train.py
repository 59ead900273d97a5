"""Flow `train-model`: one job's training run at its planned slot, watched against the grid."""

from __future__ import annotations

import threading
import time

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.runtime import flow_run
from prefect.states import Completed, Failed

from carbonshift.config import TrainingConfig
from carbonshift.energy import Sample
from carbonshift.job import JobSpec
from carbonshift.plan import NotRunnable, Plan, runnable
from carbonshift.training import TrainingContext
from tasks.training import (
    ProgressReporter,
    checkpoints_for,
    open_run_meter,
    provision,
    publish_emissions,
    release,
    release_on_hook,
    replan_rest,
    run_training,
    watch_grid,
)


@flow(name="train-model", on_cancellation=[release_on_hook], on_crashed=[release_on_hook])
def train_model(
    job: JobSpec, plan: Plan, resume_from: str | None = None, config: TrainingConfig | None = None
) -> State:
    """Run `job` as `plan` says: train with checkpoints, watch the grid, step aside if needed.

    Args:
        job: the training job (work, window, candidate regions, entrypoint).
        plan: the plan chosen for it: region, instance type, start, forecast and explanation.
        resume_from: a checkpoint URI to resume from, or none to start afresh. Without a valid
            checkpoint there the run fails, unless `config.allow_fresh_start`.
        config: checkpoint store, monitor rule and where actual intensity comes from.
    """
    try:
        plan = runnable(plan)  # never one replica of a data-parallel plan as if it were all
    except NotRunnable as e:
        return Failed(message=str(e))
    config = config or TrainingConfig()
    run_id = str(flow_run.get_id() or "local")
    provision(run_id, plan, config)
    stop, done = threading.Event(), threading.Event()
    meter = open_run_meter(plan)
    samples = [Sample(time.time(), meter.read_j())]
    reporter = ProgressReporter(job.name)
    try:
        ctx = TrainingContext(
            checkpoints_for(job, config, resume_from, run_id),
            stop=stop,
            on_progress=reporter,
            checkpoint_every_s=config.checkpoint_every_s,
            options=config.options,
            resume_from=resume_from,
            allow_fresh_start=config.allow_fresh_start,
        )
        trainer = run_training.submit(job, ctx, done)
        watcher = watch_grid.submit(
            job, plan, config, run_id, samples[0].at_s, stop, done, reporter, samples, meter
        )
        outcome = trainer.result()
        verdict = watcher.result()
    finally:
        release(run_id, config)
    samples.append(Sample(time.time(), meter.read_j()))
    publish_emissions(job, plan, samples, meter.label, outcome, verdict, config)
    if outcome.completed:
        return Completed(message=f"trained {outcome.step} steps")
    if verdict is None:
        return Completed(
            name="Stopped",
            message=f"stopped at step {outcome.step}: "
            f"{outcome.stopped_reason}; resume from {outcome.checkpoint_uri}",
        )
    scheduled, note = replan_rest(job, plan, outcome, config, run_id)
    return Completed(
        name="Rescheduled" if scheduled else "Stopped", message=f"{verdict.reason}; {note}"
    )
