"""Flow `train-model`: one job's training run, scheduled by the planner at the chosen slot."""

from __future__ import annotations

from prefect import flow

from carbonshift.job import JobSpec
from carbonshift.plan import Plan
from tasks.training import record_run


@flow(name="train-model")
def train_model(job: JobSpec, plan: Plan, resume_from: str | None = None) -> str:
    """Run `job` as `plan` says.

    Args:
        job: the training job (work, window, candidate regions, entrypoint).
        plan: the plan chosen for it: region, instance type, start, forecast and explanation.
        resume_from: a checkpoint URI to resume from, or none to start afresh.
    """
    return record_run(job, plan, resume_from)
