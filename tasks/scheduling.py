"""Schedule training runs for plans: one deployment run per job, replaced (not duplicated)
when a re-plan moves it, left alone once it runs.

A re-plan creates the new run first and only then removes the runs it replaces: if creating
fails, the job keeps the run it had. If removing fails, two runs are scheduled for a while: the
outcome says so, and the next re-plan removes the stale one."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast
from uuid import UUID

import httpx
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterName,
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound, PrefectException
from prefect.logging import get_logger
from prefect.settings import get_current_settings

from carbonshift.artifacts import Scheduled, ScheduleStatus
from carbonshift.job import JobSpec
from carbonshift.plan import FeasiblePlan, NotRunnable, Plan, SpreadPlan, runnable

JOB_TAG = "carbonshift-job:"
ACTIVE = [StateType.PENDING, StateType.RUNNING, StateType.CANCELLING, StateType.PAUSED]
# What creating or deleting a run can raise: server answers and transport failures.
SCHEDULING_ERRORS = (PrefectException, httpx.HTTPError)


def plan_fingerprint(plan: FeasiblePlan) -> str:
    """Same slot, same key: where, on what, when."""
    c = plan.chosen
    text = "|".join(
        [
            plan.job,
            c.region,
            c.instance_type,
            c.start.isoformat(),
            c.end.isoformat(),
        ]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_key(plan: FeasiblePlan, job: JobSpec, training: dict[str, object] | None = None) -> str:
    """The idempotency key of a job's run: the slot, and what the run would be given (a changed
    entrypoint or training config is a new run, not the old one with stale parameters)."""
    given = json.dumps(
        [job.model_dump(mode="json", by_alias=True), training], sort_keys=True, default=str
    )
    digest = hashlib.sha256(f"{plan_fingerprint(plan)}|{given}".encode()).hexdigest()[:16]
    return f"carbonshift-{plan.job}-{digest}"


def run_link(flow_run_id: UUID | str) -> str | None:
    ui = get_current_settings().ui_url
    return f"{ui.rstrip('/')}/runs/flow-run/{flow_run_id}" if ui else None


@contextmanager
def _client(client: SyncPrefectClient | None) -> Iterator[SyncPrefectClient]:
    if client is not None:
        yield client
        return
    with get_client(sync_client=True) as own:
        yield own


def job_runs(
    deployment: str,
    job: str,
    states: list[StateType],
    client: SyncPrefectClient | None = None,
) -> list[FlowRun]:
    flow_name, _, deployment_name = deployment.partition("/")
    with _client(client) as c:
        return c.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[deployment_name])),
            flow_run_filter=FlowRunFilter(
                tags=FlowRunFilterTags(all_=[JOB_TAG + job]),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=states)),
            ),
        )


def _one_line(error: BaseException, limit: int = 300) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


@task(cache_policy=NO_CACHE)
def schedule_runs(
    plans: list[Plan],
    jobs: list[JobSpec],
    deployment: str,
    training: dict[str, object] | None = None,
) -> dict[str, Scheduled]:
    """One outcome per plan; a job whose run cannot be created gets status `failed` (and keeps
    the run it had), and the other jobs are still scheduled."""
    logger = get_run_logger()
    specs = {j.name: j for j in jobs}
    out: dict[str, Scheduled] = {}
    for plan in plans:
        try:
            slot = runnable(plan)
        except NotRunnable as e:
            out[plan.job] = Scheduled(plan.job, "not-scheduled", note=str(e))
            if isinstance(plan, SpreadPlan):
                logger.warning("%s: %s", plan.job, e)
            continue
        if plan.job not in specs:
            out[plan.job] = Scheduled(plan.job, "not-scheduled")
            continue
        out[plan.job] = schedule_one(slot, specs[plan.job], deployment, training)
        log = logger.error if out[plan.job].status == "failed" else logger.info
        log("%s: %s %s", plan.job, out[plan.job].status, out[plan.job].note)
    return out


def schedule_one(
    plan: FeasiblePlan,
    job: JobSpec,
    deployment: str,
    training: dict[str, object] | None = None,
    *,
    client: SyncPrefectClient | None = None,
) -> Scheduled:
    """Create the plan's run (or find it: same key, same run), then remove the job's other
    scheduled runs. `client` lists and deletes runs (default: a new one)."""
    logger = get_logger("carbonshift.scheduling")
    with _client(client) as c:
        running = job_runs(deployment, plan.job, ACTIVE, c)
        if running:
            run = running[0]
            return Scheduled(
                plan.job,
                "running",
                str(run.id),
                run_link(run.id),
                "a training run is already under way: left alone",
            )
        key = run_key(plan, job, training)
        earlier = job_runs(deployment, plan.job, [StateType.SCHEDULED], c)
        try:
            run = cast(
                FlowRun,
                run_deployment(
                    deployment,
                    parameters={
                        "job": job.model_dump(mode="json", by_alias=True),
                        "plan": plan.model_dump(mode="json"),
                        "resume_from": None,
                        **({"config": training} if training else {}),
                    },
                    scheduled_time=plan.chosen.start,
                    timeout=0,
                    idempotency_key=key,
                    tags=["carbonshift", JOB_TAG + plan.job],
                    flow_run_name=f"{plan.job}-{plan.chosen.start:%Y%m%d-%H%M}",
                    as_subflow=False,
                ),
            )
        except SCHEDULING_ERRORS as e:
            kept = ", ".join(str(r.id) for r in earlier)
            return Scheduled(
                plan.job,
                "failed",
                note=f"could not create the training run on {deployment}: {_one_line(e)}; "
                + (f"kept the scheduled run {kept}" if kept else "no run is scheduled"),
            )
        replaced: list[str] = []
        left: list[str] = []
        for old in earlier:
            if old.id == run.id:
                continue
            try:
                c.delete_flow_run(old.id)  # frees its slot; the new plan took over
            except ObjectNotFound:
                pass  # gone already (started and finished, or removed by someone else)
            except SCHEDULING_ERRORS as e:
                logger.warning(
                    "%s: could not remove the replaced run %s (%s): two runs are scheduled "
                    "until the next re-plan removes it",
                    plan.job,
                    old.id,
                    _one_line(e),
                )
                left.append(str(old.id))
                continue
            replaced.append(str(old.id))
    status: ScheduleStatus = "scheduled"
    note = f"for {plan.chosen.start:%Y-%m-%d %H:%M} UTC"
    if replaced:
        status, note = "replaced", f"{note}; replaced scheduled run {', '.join(replaced)}"
    elif any(r.id == run.id for r in earlier) or (
        run.state is not None and run.state.type != StateType.SCHEDULED
    ):
        status = "unchanged"
        note = f"same plan as before ({run.state.name if run.state else 'scheduled'})"
    if left:
        note += (
            f"; WARNING: could not remove the replaced run {', '.join(left)}: two runs are "
            "scheduled until the next re-plan removes it (or delete it by hand)"
        )
    return Scheduled(plan.job, status, str(run.id), run_link(run.id), note)


@task(cache_policy=NO_CACHE)
def reschedule_remaining(
    job: JobSpec, plan: FeasiblePlan, deployment: str, parameters: dict[str, object], key: str
) -> Scheduled:
    """Schedule the rest of a stopped run (the current run is still running: no dedup by job)."""
    run = cast(
        FlowRun,
        run_deployment(
            deployment,
            parameters=parameters,
            scheduled_time=plan.chosen.start,
            timeout=0,
            idempotency_key=key,
            tags=["carbonshift", JOB_TAG + job.name, "carbonshift-resume"],
            flow_run_name=f"{job.name}-resume-{plan.chosen.start:%Y%m%d-%H%M}",
            as_subflow=False,
        ),
    )
    return Scheduled(
        job.name,
        "scheduled",
        str(run.id),
        run_link(run.id),
        f"resumes at {plan.chosen.start:%Y-%m-%d %H:%M} UTC in {plan.chosen.region}",
    )
