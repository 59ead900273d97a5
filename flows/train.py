"""Flow `train-model`: one job's training run at its planned slot, watched against the grid."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.runtime import flow_run
from prefect.states import Completed, Failed

from carbonshift.config import TrainingConfig
from carbonshift.job import JobSpec
from carbonshift.plan import PLANS, Plan
from carbonshift.run import NotRunnable, placement_of
from carbonshift.runs import release_everywhere
from tasks.charts import publish_run_chart
from tasks.clouds import cloud_access
from tasks.events import emit_rescheduled, emit_run_ended, emit_run_started
from tasks.training import publish_emissions, replan_rest, supervise_run


def release_on_hook(flow: Any, flow_run: Any, state: Any) -> None:
    """on_cancellation / on_crashed / on_failure: runs in the worker's process (or the flow's),
    finds compute by run id (Prefect passes the hook's arguments by these names)."""
    parameters = flow_run.parameters or {}
    config = TrainingConfig.model_validate(parameters.get("config") or {})
    try:
        placement = placement_of(PLANS.validate_python(parameters.get("plan")))
    except (NotRunnable, ValueError):  # nothing launched in a cloud for a plan that cannot run
        placement = None
    release_everywhere(config, placement, str(flow_run.id), cloud_access(config))


@flow(
    name="train-model",
    on_cancellation=[release_on_hook],
    on_crashed=[release_on_hook],
    on_failure=[release_on_hook],  # a release that raised in the run is tried once more
)
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
        placement = placement_of(plan)
    except NotRunnable as e:  # e.g. a spread plan: never one replica as if it were all
        return Failed(message=str(e))
    config = config or TrainingConfig()
    run_id = str(flow_run.get_id() or "local")
    emit_run_started(placement, run_id, resume_from)
    report = supervise_run(job, placement, resume_from, config, run_id)
    publish_run_chart(report, placement, config, return_state=True)  # a chart never fails a run
    emit_run_ended(report)
    outcome = report.outcome
    if outcome is None:  # the trainer failed; its compute is released; its energy counted
        publish_emissions(report, None)
        return Failed(message=report.error or "training ended without an outcome")
    if not report.replan:  # a re-planned run's table waits for the re-plan's outcome
        publish_emissions(report, outcome)
    resume = f"resume from {outcome.checkpoint_uri}"
    if report.error is not None:
        return Failed(message=f"{report.error}; stopped at step {outcome.step}, {resume}")
    if outcome.completed:
        return Completed(message=f"trained {outcome.step} steps")
    if not report.replan:
        return Completed(
            name="Stopped",
            message=f"stopped at step {outcome.step}: {outcome.stopped_reason}; {resume}",
        )
    scheduled, note = replan_rest(job, placement, outcome, config, run_id, report.started_step)
    publish_emissions(report, outcome, rescheduled=scheduled)
    emit_rescheduled(job.name, run_id, scheduled, note)
    why = report.stopped_by
    if outcome.stopped_reason and outcome.stopped_reason not in (why or ""):
        why = f"{why} ({outcome.stopped_reason})"  # what the instance said: a notice, a loss
    return Completed(name="Rescheduled" if scheduled else "Stopped", message=f"{why}; {note}")
