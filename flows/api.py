"""One call for your own flows: plan a training job and schedule its run.

    from flows.api import schedule_training, wait_for_training

    run = schedule_training(job)              # a FlowRun scheduled at the greenest slot
    state = wait_for_training(run)            # only if you want to block until it ends

Async flows use `aschedule_training` and `await_training`.
"""

from __future__ import annotations

import time
from functools import partial
from uuid import UUID

import anyio
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun, State
from prefect.flow_runs import wait_for_flow_run

from carbonshift.config import PlanningConfig
from carbonshift.job import JobSpec
from flows.plan import SchedulingFailed, plan_training


class TrainingNotScheduled(RuntimeError):
    """The job has no scheduled training run: bad spec, no slot before the deadline, over
    budget, a plan train-model cannot run (spread placement), or its run could not be created.
    The message names the job and says why."""

    def __init__(self, job: str, reason: str) -> None:
        self.job = job
        self.reason = reason
        super().__init__(f"{job}: {reason}")


class RunWithoutState(RuntimeError):
    """The Prefect server returned a flow run with no state."""


def schedule_training(job: JobSpec, *, config: PlanningConfig | None = None) -> FlowRun:
    """Plan `job` now and schedule its `train-model` run; returns that (scheduled) flow run.

    Called inside a flow, the planning shows up as a subflow run with its plan artifacts.
    Calling it again with the same job and forecast returns the same run. Raises
    `TrainingNotScheduled` when there is no run to return.
    """
    try:
        (outcome,) = plan_training(jobs=[job], queue_file=None, config=config)
    except SchedulingFailed as e:
        raise TrainingNotScheduled(job.name, str(e)) from None
    if outcome.flow_run_id is None:
        raise TrainingNotScheduled(job.name, outcome.note)
    with get_client(sync_client=True) as client:
        return client.read_flow_run(UUID(outcome.flow_run_id))


async def aschedule_training(job: JobSpec, *, config: PlanningConfig | None = None) -> FlowRun:
    return await anyio.to_thread.run_sync(partial(schedule_training, job, config=config))


def wait_for_training(
    run: FlowRun | UUID, *, timeout_s: float = 24 * 3600, poll_s: float = 30.0
) -> State:
    """Block until the training run ends (or `timeout_s` passes); returns its last state."""
    run_id = run.id if isinstance(run, FlowRun) else run
    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while True:
            current = client.read_flow_run(run_id)
            if current.state is not None and current.state.is_final():
                return current.state
            if time.monotonic() >= deadline:
                return state_of(current)
            time.sleep(poll_s)


async def await_training(
    run: FlowRun | UUID, *, timeout_s: float = 24 * 3600, poll_s: float = 30.0
) -> State:
    run_id = run.id if isinstance(run, FlowRun) else run
    finished: FlowRun = await wait_for_flow_run(
        run_id, timeout=int(timeout_s), poll_interval=int(poll_s)
    )
    return state_of(finished)


def state_of(run: FlowRun) -> State:
    """The run's state; the server always sets one, so a run without is its error, said so."""
    if run.state is None:
        raise RunWithoutState(f"the server returned flow run {run.id} without a state")
    return run.state
