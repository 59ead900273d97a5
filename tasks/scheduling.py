"""Schedule training runs for plans: one deployment run per job, replaced (not duplicated)
when a re-plan moves it, left alone once it runs, and made again when the last one crashed.

A re-plan creates the new run first and only then removes the runs it replaces: if creating
fails, the job keeps the run it had. If removing fails, two runs are scheduled for a while: the
outcome says so, and the next re-plan removes the stale one.

Planners may race (two planning runs over one queue, a re-run of one). Each one, after it has
created its runs, reads every job's scheduled runs again from the server and keeps one winner
by the same total order (a resumed rest first, then the newest by `created`, then the id),
removing the rest. Nobody ever removes the greatest run, and the planner that reads last sees
every run both created (each reads after its own creates), so any interleaving ends with
exactly one scheduled run per job.

Cost: the deployments are read once, the jobs' runs in a few paged queries (by flow name and job
tags, across every training deployment), then one create per job that needs a run (on a small
thread pool if PlanningConfig.schedule_concurrency says so): about one API call per job."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast
from uuid import UUID

import httpx
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterExpectedStartTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.context import FlowRunContext
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound, PrefectException
from prefect.logging import get_logger
from prefect.settings import get_current_settings
from prefect.states import Scheduled as ScheduledState
from prefect.telemetry.run_telemetry import LABELS_TRACEPARENT_KEY

from carbonshift.artifacts import Scheduled, ScheduleStatus
from carbonshift.config import PlanningConfig, TrainingConfig
from carbonshift.job import JobSpec
from carbonshift.plan import FeasiblePlan, NotRunnable, Plan, SpreadPlan, runnable

JOB_TAG = "carbonshift-job:"
RESUME_TAG = "carbonshift-resume"
ACTIVE = [StateType.PENDING, StateType.RUNNING, StateType.CANCELLING, StateType.PAUSED]
ENDED_BADLY = [StateType.FAILED, StateType.CRASHED, StateType.CANCELLED]
# What creating or deleting a run can raise: server answers and transport failures.
SCHEDULING_ERRORS = (PrefectException, httpx.HTTPError)
# Jobs per listing query: each has a run or two, so one query is mostly one page.
JOBS_PER_QUERY = 100
PAGE = 200  # the server's default cap on one answer
# How far back a run that ended badly is looked for (a crashed run is re-planned, resuming).
LOOKBACK = timedelta(days=7)
CREATE_WORKERS = 1  # PlanningConfig.schedule_concurrency: a SQLite server is slower with more


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


def attempt_key(base: str, ended_badly: int) -> str:
    """The key of a plan's next attempt: a run that failed, crashed or was cancelled under
    `base` (or an earlier attempt) is not returned again by the same key."""
    return base if ended_badly == 0 else f"{base}-retry-{ended_badly}"


def _same_plan(key: str | None, base: str) -> bool:
    return key is not None and (key == base or key.startswith(f"{base}-retry-"))


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


def _state(run: FlowRun) -> StateType | None:
    return run.state.type if run.state is not None else None


def list_job_runs(
    client: SyncPrefectClient,
    flows: Iterable[str],
    jobs: Iterable[str],
    states: list[StateType],
    *,
    after: datetime | None = None,
) -> dict[str, list[FlowRun]]:
    """The jobs' runs in `states`, by job, across every deployment of `flows` (a run moved to
    another pool's deployment is still the job's): a query per JOBS_PER_QUERY jobs."""
    flow_filter = FlowFilter(name=FlowFilterName(any_=sorted(set(flows))))
    names = list(dict.fromkeys(jobs))
    found: dict[str, list[FlowRun]] = {}
    for i in range(0, len(names), JOBS_PER_QUERY):
        run_filter = FlowRunFilter(
            tags=FlowRunFilterTags(any_=[JOB_TAG + n for n in names[i : i + JOBS_PER_QUERY]]),
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=states)),
            expected_start_time=FlowRunFilterExpectedStartTime(after_=after) if after else None,
        )
        offset = 0
        while True:
            page = client.read_flow_runs(
                flow_filter=flow_filter,
                flow_run_filter=run_filter,
                sort=FlowRunSort.ID_DESC,
                limit=PAGE,
                offset=offset,
            )
            for run in page:
                for tag in run.tags:
                    if tag.startswith(JOB_TAG):
                        found.setdefault(tag[len(JOB_TAG) :], []).append(run)
            if len(page) < PAGE:
                break
            offset += PAGE
    return found


def job_runs(
    deployment: str,
    job: str,
    states: list[StateType],
    client: SyncPrefectClient | None = None,
) -> list[FlowRun]:
    """The job's runs in `states` of the flow `deployment` names, on any of its deployments."""
    with _client(client) as c:
        return list_job_runs(c, [deployment.partition("/")[0]], [job], states).get(job, [])


def _one_line(error: BaseException, limit: int = 300) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Want:
    """What one job should have: a run of `plan` on `deployment`, given `training`."""

    plan: FeasiblePlan
    job: JobSpec
    deployment: str
    training: dict[str, object] | None = None


@dataclass
class _Job:
    """One job through a scheduling pass."""

    want: Want
    earlier: list[FlowRun] = field(default_factory=list)  # scheduled before this pass
    key: str = ""
    mine: FlowRun | None = None  # the plan's run: found by key, or created
    created: bool = False
    parameters: dict[str, Any] = field(default_factory=dict)
    resumes: str | None = None


@task(cache_policy=NO_CACHE)
def schedule_runs(
    plans: list[Plan], jobs: list[JobSpec], config: PlanningConfig
) -> dict[str, Scheduled]:
    """One outcome per plan, each run on the deployment routed for its region; a job whose run
    cannot be created gets status `failed` (and keeps the run it had), and the other jobs are
    still scheduled."""
    logger = get_run_logger()
    specs = {j.name: j for j in jobs}
    out: dict[str, Scheduled] = {}
    wants: list[Want] = []
    training: dict[str, dict[str, object] | None] = {}
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
        deployment = config.deployment_for(slot.chosen.region)
        if deployment not in training:
            training[deployment] = config.training_parameters(deployment)
        wants.append(Want(slot, specs[plan.job], deployment, training[deployment]))
    with _client(None) as client:
        done = schedule_batch(
            wants,
            client,
            flows=_flows(config.training_deployments()),
            workers=config.schedule_concurrency,
        )
    for name, outcome in done.items():
        out[name] = outcome
        log = logger.error if outcome.status == "failed" else logger.info
        log("%s: %s %s", name, outcome.status, outcome.note)
    return out


def _flows(deployments: Iterable[str]) -> list[str]:
    return sorted({d.partition("/")[0] for d in deployments})


def schedule_one(
    plan: FeasiblePlan,
    job: JobSpec,
    deployment: str,
    training: dict[str, object] | None = None,
    *,
    client: SyncPrefectClient | None = None,
) -> Scheduled:
    """One job's run (see schedule_batch). `client` lists, creates and deletes runs (default:
    a new one)."""
    with _client(client) as c:
        found = schedule_batch([Want(plan, job, deployment, training)], c, workers=1)
    return found[plan.job]


def schedule_batch(
    wants: list[Want],
    client: SyncPrefectClient,
    *,
    flows: Iterable[str] = (),
    workers: int = CREATE_WORKERS,
) -> dict[str, Scheduled]:
    """Create each job's run where it lacks one, then keep one scheduled run per job. `flows`:
    the training flows whose runs count as the jobs' (besides those of the wanted deployments)."""
    logger = get_logger("carbonshift.scheduling")
    out: dict[str, Scheduled] = {}
    if not wants:
        return out
    flow_names = _flows([w.deployment for w in wants]) + list(flows)
    ids, missing = _deployment_ids({w.deployment for w in wants}, client)
    names = [w.plan.job for w in wants]
    current = list_job_runs(client, flow_names, names, [StateType.SCHEDULED, *ACTIVE])
    after = min(w.plan.chosen.start for w in wants) - LOOKBACK
    ended = list_job_runs(
        client, flow_names, names, [*ENDED_BADLY, StateType.COMPLETED], after=after
    )
    todo: dict[str, _Job] = {}
    for want in wants:
        name = want.plan.job
        decided = _decide(want, current.get(name, []), ended.get(name, []))
        if isinstance(decided, Scheduled):
            out[name] = decided
        elif want.deployment in missing:
            out[name] = _failed(decided, missing[want.deployment])
        else:
            todo[name] = decided

    labels = _trace_labels()  # read here: the pool's threads do not see the run's context

    def create(job: _Job) -> FlowRun | BaseException:
        w = job.want
        try:
            return client.create_flow_run_from_deployment(
                ids[w.deployment],
                parameters=job.parameters,
                state=ScheduledState(scheduled_time=w.plan.chosen.start),
                name=f"{w.plan.job}-{w.plan.chosen.start:%Y%m%d-%H%M}",
                tags=["carbonshift", JOB_TAG + w.plan.job],
                idempotency_key=job.key,
                labels=labels,
            )
        except SCHEDULING_ERRORS as e:
            return e

    creating = [j for j in todo.values() if j.mine is None]
    for job, made in zip(creating, _pooled(create, creating, workers), strict=True):
        if isinstance(made, BaseException):
            out[job.want.plan.job] = _failed(job, _one_line(made))
            del todo[job.want.plan.job]
            continue
        job.mine, job.created = made, True
        if _state(made) != StateType.SCHEDULED:  # the key's run, which went on meanwhile
            del todo[job.want.plan.job]
            out[job.want.plan.job] = _unchanged(job.want.plan.job, made)
    out.update(_reconcile(todo, client, flow_names, workers, logger))
    return {w.plan.job: out[w.plan.job] for w in wants}


def _deployment_ids(
    names: Iterable[str], client: SyncPrefectClient
) -> tuple[dict[str, UUID], dict[str, str]]:
    ids: dict[str, UUID] = {}
    missing: dict[str, str] = {}
    for name in sorted(names):
        try:
            ids[name] = client.read_deployment_by_name(name).id
        except SCHEDULING_ERRORS as e:
            missing[name] = _one_line(e)
    return ids, missing


def _decide(want: Want, current: list[FlowRun], ended: list[FlowRun]) -> Scheduled | _Job:
    """Leave the job alone (an outcome), or what its run should be (a _Job)."""
    name = want.plan.job
    running = [r for r in current if _state(r) in ACTIVE]
    if running:
        return Scheduled(
            name,
            "running",
            str(running[0].id),
            run_link(running[0].id),
            "a training run is already under way: left alone",
        )
    earlier = [r for r in current if _state(r) == StateType.SCHEDULED]
    rest = [r for r in earlier if RESUME_TAG in r.tags]
    if rest:
        return Scheduled(
            name,
            "unchanged",
            str(rest[0].id),
            run_link(rest[0].id),
            "the rest of a stopped run is scheduled (it resumes from its checkpoint): left alone",
        )
    base = run_key(want.plan, want.job, want.training)
    family = [r for r in ended if _same_plan(r.idempotency_key, base)]
    completed = [r for r in family if _state(r) == StateType.COMPLETED]
    if completed:
        return _unchanged(name, completed[0])
    job = _Job(want, earlier, attempt_key(base, sum(_state(r) in ENDED_BADLY for r in family)))
    job.mine = next((r for r in earlier if r.idempotency_key == job.key), None)
    job.parameters = {
        "job": want.job.model_dump(mode="json", by_alias=True),
        "plan": want.plan.model_dump(mode="json"),
        "resume_from": None,
        **({"config": want.training} if want.training else {}),
    }
    latest = max(ended, key=_newest, default=None)
    if latest is not None and _state(latest) in ENDED_BADLY:
        # Its work is not lost: this run continues from its checkpoints (or starts afresh
        # when it saved none).
        job.resumes = str(latest.id)
        job.parameters["resume_from"] = checkpoint_folder(latest, name)
        job.parameters["config"] = (
            TrainingConfig.model_validate(want.training or {})
            .model_copy(update={"allow_fresh_start": True})
            .model_dump(mode="json")
        )
    return job


def checkpoint_folder(run: FlowRun, job: str) -> str:
    """Where a training run that ended badly kept its checkpoints: the folder it resumed in,
    else its own `<checkpoint_store>/<job>/<run id>` (carbonshift.run.context.checkpoints_for)."""
    parameters = run.parameters or {}
    resumed = parameters.get("resume_from")
    if isinstance(resumed, str) and resumed:
        return resumed
    store = TrainingConfig.model_validate(parameters.get("config") or {}).checkpoint_store
    return f"{store.rstrip('/')}/{job}/{run.id}"


def _order(run: FlowRun) -> tuple[bool, float, str]:
    """The winner among a job's scheduled runs is the greatest: a resumed rest (the job is
    half done), then the newest, then by id, so every planner picks the same one."""
    created = run.created.timestamp() if run.created is not None else 0.0
    return (RESUME_TAG in run.tags, created, str(run.id))


def _newest(run: FlowRun) -> tuple[float, str]:
    return (run.created.timestamp() if run.created is not None else 0.0, str(run.id))


_In = TypeVar("_In")
_Out = TypeVar("_Out")


def _pooled(fn: Callable[[_In], _Out], items: list[_In], workers: int) -> list[_Out]:
    """fn over items on at most `workers` threads (the client is shared), in order."""
    if workers <= 1 or len(items) <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="carbonshift-schedule") as ex:
        return list(ex.map(fn, items))


def _trace_labels() -> dict[str, Any]:
    """What run_deployment links a created run to: the planning run's trace, if any."""
    context = FlowRunContext.get()
    run = context.flow_run if context else None
    parent = run.labels.get(LABELS_TRACEPARENT_KEY) if run else None
    return {LABELS_TRACEPARENT_KEY: parent} if parent else {}


def _failed(job: _Job, error: str) -> Scheduled:
    kept = ", ".join(str(r.id) for r in job.earlier)
    return Scheduled(
        job.want.plan.job,
        "failed",
        note=f"could not create the training run on {job.want.deployment}: {error}; "
        + (f"kept the scheduled run {kept}" if kept else "no run is scheduled"),
    )


def _unchanged(name: str, run: FlowRun) -> Scheduled:
    state = run.state.name if run.state else "scheduled"
    return Scheduled(
        name, "unchanged", str(run.id), run_link(run.id), f"same plan as before ({state})"
    )


def _reconcile(
    todo: dict[str, _Job],
    client: SyncPrefectClient,
    flows: list[str],
    workers: int,
    logger: Any,
) -> dict[str, Scheduled]:
    """Read the jobs' scheduled runs again, keep the greatest of each (_order), remove the
    others: the runs this plan replaces, and any a racing planner made."""
    if not todo:
        return {}
    scheduled = list_job_runs(client, flows, list(todo), [StateType.SCHEDULED])
    winners: dict[str, FlowRun] = {}
    doomed: list[tuple[str, FlowRun]] = []
    for name, job in todo.items():
        runs = scheduled.get(name, [])
        mine = job.mine
        assert mine is not None  # every job left to reconcile has its run
        # Not read back: a worker took it already (or a racing planner removed it for a
        # greater one, which is then in `runs`). It still outranks what it replaces.
        view = runs if any(r.id == mine.id for r in runs) else [*runs, mine]
        winner = max(view, key=_order)
        winners[name] = winner
        doomed += [(name, r) for r in runs if r.id != winner.id]

    def delete(item: tuple[str, FlowRun]) -> BaseException | None:
        try:
            client.delete_flow_run(item[1].id)  # frees its slot; the winner took over
        except ObjectNotFound:
            return None  # gone already (started and finished, or removed by someone else)
        except SCHEDULING_ERRORS as e:
            return e
        return None

    removed: dict[str, list[str]] = {}
    left: dict[str, list[str]] = {}
    for (name, run), error in zip(doomed, _pooled(delete, doomed, workers), strict=True):
        if error is None:
            removed.setdefault(name, []).append(str(run.id))
            continue
        logger.warning(
            "%s: could not remove the replaced run %s (%s): two runs are scheduled until the "
            "next re-plan removes it",
            name,
            run.id,
            _one_line(error),
        )
        left.setdefault(name, []).append(str(run.id))
    return {
        name: _outcome(job, winners[name], removed.get(name, []), left.get(name, []))
        for name, job in todo.items()
    }


def _outcome(job: _Job, winner: FlowRun, removed: list[str], left: list[str]) -> Scheduled:
    plan, mine = job.want.plan, job.mine
    assert mine is not None
    name = plan.job
    status: ScheduleStatus = "scheduled"
    note = f"for {plan.chosen.start:%Y-%m-%d %H:%M} UTC on {job.want.deployment}"
    if job.resumes:
        note += f"; resumes from the checkpoints of run {job.resumes}, which did not complete"
    if winner.id != mine.id:
        note = (
            f"another planner scheduled run {winner.id} at the same time: it is kept (the "
            f"newest), and this plan's run {mine.id} ({note}) removed"
        )
    elif removed:
        status, note = "replaced", f"{note}; replaced scheduled run {', '.join(removed)}"
    elif not job.created or any(r.id == mine.id for r in job.earlier):
        status, note = "unchanged", "same plan as before (Scheduled)"
    if left:
        note += (
            f"; WARNING: could not remove the replaced run {', '.join(left)}: two runs are "
            "scheduled until the next re-plan removes it (or delete it by hand)"
        )
    return Scheduled(name, status, str(winner.id), run_link(winner.id), note)


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
            tags=["carbonshift", JOB_TAG + job.name, RESUME_TAG],
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
