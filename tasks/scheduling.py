"""Schedule training runs for plans: one deployment run per job, replaced (not duplicated)
when a re-plan moves it, left alone once it runs."""

from __future__ import annotations

import hashlib
from typing import cast
from uuid import UUID

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
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
from prefect.settings import get_current_settings

from carbonshift.artifacts import Scheduled, ScheduleStatus
from carbonshift.job import JobSpec
from carbonshift.plan import Plan

JOB_TAG = "carbonshift-job:"
ACTIVE = [StateType.PENDING, StateType.RUNNING, StateType.CANCELLING, StateType.PAUSED]


def plan_fingerprint(plan: Plan) -> str:
    """Same slot, same key: where, on what, when."""
    assert plan.chosen is not None
    c = plan.chosen
    text = "|".join(
        [
            plan.job,
            *(s.region for s in plan.shards or [c]),
            c.instance_type,
            c.start.isoformat(),
            c.end.isoformat(),
        ]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_link(flow_run_id: UUID | str) -> str | None:
    ui = get_current_settings().ui_url
    return f"{ui.rstrip('/')}/runs/flow-run/{flow_run_id}" if ui else None


def job_runs(deployment: str, job: str, states: list[StateType]) -> list[FlowRun]:
    flow_name, _, deployment_name = deployment.partition("/")
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[deployment_name])),
            flow_run_filter=FlowRunFilter(
                tags=FlowRunFilterTags(all_=[JOB_TAG + job]),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=states)),
            ),
        )


@task(cache_policy=NO_CACHE)
def schedule_runs(
    plans: list[Plan],
    jobs: list[JobSpec],
    deployment: str,
    training: dict[str, object] | None = None,
) -> dict[str, Scheduled]:
    logger = get_run_logger()
    specs = {j.name: j for j in jobs}
    out: dict[str, Scheduled] = {}
    for plan in plans:
        if not plan.feasible or plan.chosen is None or plan.job not in specs:
            out[plan.job] = Scheduled(plan.job, "not-scheduled", note=plan.reason)
            continue
        out[plan.job] = schedule_one(plan, specs[plan.job], deployment, training)
        logger.info("%s: %s %s", plan.job, out[plan.job].status, out[plan.job].note)
    return out


def schedule_one(
    plan: Plan, job: JobSpec, deployment: str, training: dict[str, object] | None = None
) -> Scheduled:
    assert plan.chosen is not None
    running = job_runs(deployment, plan.job, ACTIVE)
    if running:
        run = running[0]
        return Scheduled(
            plan.job,
            "running",
            str(run.id),
            run_link(run.id),
            "a training run is already under way: left alone",
        )
    key = f"carbonshift-{plan.job}-{plan_fingerprint(plan)}"
    replaced: list[str] = []
    kept = False
    with get_client(sync_client=True) as client:
        for run in job_runs(deployment, plan.job, [StateType.SCHEDULED]):
            if run.idempotency_key == key:
                kept = True
            else:
                client.delete_flow_run(run.id)  # frees its slot; the new plan takes over
                replaced.append(str(run.id))
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
    status: ScheduleStatus = "scheduled"
    note = f"for {plan.chosen.start:%Y-%m-%d %H:%M} UTC"
    if replaced:
        status, note = "replaced", f"{note}; replaced scheduled run {', '.join(replaced)}"
    elif kept or (run.state is not None and run.state.type != StateType.SCHEDULED):
        status = "unchanged"
        note = f"same plan as before ({run.state.name if run.state else 'scheduled'})"
    return Scheduled(plan.job, status, str(run.id), run_link(run.id), note)


@task(cache_policy=NO_CACHE)
def reschedule_remaining(
    job: JobSpec, plan: Plan, deployment: str, parameters: dict[str, object], key: str
) -> Scheduled:
    """Schedule the rest of a stopped run (the current run is still running: no dedup by job)."""
    assert plan.chosen is not None
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
