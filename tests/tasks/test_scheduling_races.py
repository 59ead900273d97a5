"""Scheduling against the test server, asserted from its records: routing to each pool's
deployment, racing planners (free threads and forced interleavings) leaving exactly one scheduled
run per job, and runs that failed, crashed or were cancelled made again, resuming."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.states import Cancelled, Completed, Crashed, Failed, Running

from carbonshift.catalog import default_catalog
from carbonshift.config import PlanningConfig
from carbonshift.job import JobSpec
from carbonshift.plan import FeasiblePlan
from carbonshift.planner import plan_jobs
from tasks.scheduling import (
    RESUME_TAG,
    Want,
    job_runs,
    list_job_runs,
    schedule_batch,
)
from tests.conftest import make_series

pytestmark = pytest.mark.integration
NOW = datetime(2030, 1, 1, tzinfo=UTC)
DEFAULT, AWS, GCP = "train-model/default", "train-model/gpu-aws", "train-model/gpu-gcp"
ROUTES = {"aws:*": AWS, "gcp:*": GCP}
REGIONS = ["aws:eu-west-2", "gcp:europe-west4"]


@pytest.fixture(scope="module")
def deployments(prefect_server: None) -> None:
    """One train-model deployment per pool (no worker: scheduled runs stay scheduled)."""
    from flows.train import train_model

    for name in ("default", "gpu-aws", "gpu-gcp"):
        train_model.to_deployment(name=name).apply()


def spec(name: str, region: str = "aws:eu-west-2", **extra: Any) -> JobSpec:
    instance = "g5.xlarge" if region.startswith("aws:") else "g2-standard-4"
    return JobSpec.model_validate({
        "name": name, "work": {"duration": "1h", "instance_type": instance},
        "within": "24h", "regions": [region], **extra})


def plans(jobs: list[JobSpec], low_hour: int, now: datetime = NOW) -> list[FeasiblePlan]:
    """Every region's cleanest hour `low_hour` hours after `now`: the plans start there."""
    values = [300.0] * 48
    values[low_hour] = 50.0
    forecasts = {r: make_series(values, start=now, step_s=3600, zone=r) for r in REGIONS}
    found = plan_jobs(jobs, forecasts, now=now, catalog=default_catalog())
    assert all(isinstance(p, FeasiblePlan) for p in found), found
    return found  # type: ignore[return-value]


def wants(jobs: list[JobSpec], low_hour: int, config: PlanningConfig | None = None) -> list[Want]:
    config = config or PlanningConfig(routes=ROUTES)
    out = []
    for plan in plans(jobs, low_hour):
        deployment = config.deployment_for(plan.chosen.region)
        out.append(Want(plan, next(j for j in jobs if j.name == plan.job), deployment,
                        config.training_parameters(deployment)))
    return out


def scheduled(job: str) -> list[FlowRun]:
    return job_runs(DEFAULT, job, [StateType.SCHEDULED])


def schedule(
    items: list[Want], client: SyncPrefectClient | None = None, workers: int = 2
) -> dict[str, Any]:
    """Two creates at once: the thread pool is exercised too."""
    if client is not None:
        return schedule_batch(items, client, flows=["train-model"], workers=workers)
    with get_client(sync_client=True) as own:
        return schedule_batch(items, own, flows=["train-model"], workers=workers)


def deployment_of(run: FlowRun) -> str:
    with get_client(sync_client=True) as client:
        assert run.deployment_id is not None
        return f"train-model/{client.read_deployment(run.deployment_id).name}"


# -- routing -----------------------------------------------------------------------------------


def test_each_run_goes_to_its_regions_pool_and_a_move_leaves_nothing_behind(
    deployments: None,
) -> None:
    jobs = [spec("route-aws"), spec("route-gcp", "gcp:europe-west4")]
    out = schedule(wants(jobs, low_hour=5))
    assert {n: o.status for n, o in out.items()} == {"route-aws": "scheduled",
                                                     "route-gcp": "scheduled"}
    (aws,) = scheduled("route-aws")
    (gcp,) = scheduled("route-gcp")
    assert (deployment_of(aws), deployment_of(gcp)) == (AWS, GCP)
    # Each run carries the deployment it was sent to, and the routes for its re-planned rest.
    assert aws.parameters["config"]["training_deployment"] == AWS
    assert gcp.parameters["config"]["training_deployment"] == GCP
    assert gcp.parameters["config"]["routes"] == {**ROUTES, "*": DEFAULT}
    assert "on train-model/gpu-gcp" in out["route-gcp"].note

    # The job moves to GCP: its run moves pools, and the AWS one is removed.
    moved = [spec("route-aws", "gcp:europe-west4", within="25h")]
    (outcome,) = schedule(wants(moved, low_hour=7)).values()
    assert outcome.status == "replaced" and str(aws.id) in outcome.note
    (now_run,) = scheduled("route-aws")
    assert deployment_of(now_run) == GCP
    assert now_run.expected_start_time == NOW + timedelta(hours=7)


def test_a_missing_deployment_fails_only_its_jobs(deployments: None) -> None:
    config = PlanningConfig(routes={"gcp:*": "train-model/gpu-nowhere"})
    jobs = [spec("miss-aws"), spec("miss-gcp", "gcp:europe-west4")]
    out = schedule(wants(jobs, low_hour=4, config=config))
    assert out["miss-aws"].status == "scheduled"
    assert out["miss-gcp"].status == "failed"
    assert "could not create the training run on train-model/gpu-nowhere" in out["miss-gcp"].note
    assert scheduled("miss-gcp") == []


# -- races -------------------------------------------------------------------------------------


def assert_one_each(names: list[str], starts: set[datetime]) -> None:
    for name in names:
        runs = scheduled(name)
        assert len(runs) == 1, f"{name}: {len(runs)} scheduled runs"
        assert runs[0].expected_start_time in starts


@pytest.mark.parametrize("same_plan", [False, True], ids=["other-plan", "re-run"])
def test_two_planners_at_once_leave_one_run_per_job(deployments: None, same_plan: bool) -> None:
    suffix = "same" if same_plan else "other"
    jobs = [spec(f"race-{suffix}-{i}", REGIONS[i % 2]) for i in range(6)]
    schedule(wants(jobs, low_hour=3))  # what an earlier plan left: to be replaced by both
    first, second = wants(jobs, low_hour=5), wants(jobs, low_hour=5 if same_plan else 6)
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def planner(items: list[Want]) -> None:
        try:
            start.wait(timeout=30)
            schedule(items)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    threads = [threading.Thread(target=planner, args=(w,)) for w in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert_one_each([j.name for j in jobs], {NOW + timedelta(hours=h) for h in (5, 6)})


class Paused:
    """The real client, except that one planner stops before its n-th call of a method until
    the test lets it go (another planner runs meanwhile)."""

    def __init__(self, client: SyncPrefectClient, method: str, nth: int) -> None:
        self._client, self._method, self._nth, self._calls = client, method, nth, 0
        self.reached, self.go = threading.Event(), threading.Event()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name != self._method:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self._calls += 1
            if self._calls == self._nth:
                self.reached.set()
                assert self.go.wait(timeout=60), "never let go"
            return attr(*args, **kwargs)

        return call


# Where the first planner stops while the second runs from start to end: before it reads
# anything, between its reads and its creates, between its creates and its re-read, and
# between its re-read and its deletes.
PAUSES = [("read_flow_runs", 1), ("create_flow_run_from_deployment", 1), ("read_flow_runs", 3),
          ("delete_flow_run", 1)]


@pytest.mark.parametrize(("method", "nth"), PAUSES)
@pytest.mark.parametrize("second_plan", ["other", "same"])
def test_forced_interleavings_of_two_planners_end_with_one_run_per_job(
    deployments: None, method: str, nth: int, second_plan: str
) -> None:
    tag = f"{method.split('_')[0]}{nth}-{second_plan}"
    jobs = [spec(f"lock-{tag}-{i}", REGIONS[i % 2]) for i in range(2)]
    schedule(wants(jobs, low_hour=2))
    first = wants(jobs, low_hour=4)
    second = wants(jobs, low_hour=4 if second_plan == "same" else 8)
    with get_client(sync_client=True) as client:
        paused = Paused(client, method, nth)
        done: list[Any] = []
        worker = threading.Thread(target=lambda: done.append(schedule(first, paused)))  # type: ignore[arg-type]
        worker.start()
        try:
            assert paused.reached.wait(timeout=60), "the first planner never got there"
            schedule(second)  # the whole second planner, while the first is stopped
        finally:
            paused.go.set()
            worker.join(timeout=120)
    assert done, "the first planner did not finish"
    assert_one_each([j.name for j in jobs], {NOW + timedelta(hours=h) for h in (4, 8)})
    for outcome in done[0].values():
        assert outcome.status in ("scheduled", "replaced", "unchanged"), outcome


def test_a_rerun_is_unchanged_and_costs_no_create(deployments: None) -> None:
    jobs = [spec(f"rerun-{i}") for i in range(3)]
    schedule(wants(jobs, low_hour=5))
    with get_client(sync_client=True) as client:
        counted = Counting(client)
        again = schedule(wants(jobs, low_hour=5), counted)  # type: ignore[arg-type]
    assert {o.status for o in again.values()} == {"unchanged"}
    assert counted.calls.get("create_flow_run_from_deployment", 0) == 0
    assert counted.calls.get("delete_flow_run", 0) == 0
    assert_one_each([j.name for j in jobs], {NOW + timedelta(hours=5)})


class Counting:
    def __init__(self, client: SyncPrefectClient) -> None:
        self._client, self.calls = client, {}  # type: dict[str, int]

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            return attr(*args, **kwargs)

        return call


def test_scheduling_many_jobs_costs_about_one_call_each(
    deployments: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tasks.scheduling.JOBS_PER_QUERY", 10)  # 21 jobs: three queries each
    jobs = [spec(f"bulk-{i}", REGIONS[i % 2]) for i in range(21)]
    with get_client(sync_client=True) as client:
        counted = Counting(client)
        out = schedule(wants(jobs, low_hour=6), counted, workers=1)  # type: ignore[arg-type]
    assert {o.status for o in out.values()} == {"scheduled"}
    assert counted.calls["create_flow_run_from_deployment"] == 21
    assert counted.calls["read_deployment_by_name"] == 2  # once per pool's deployment
    assert counted.calls["read_flow_runs"] == 9  # three listings of three chunks of jobs
    assert sum(counted.calls.values()) == 21 + 11
    with get_client(sync_client=True) as client:
        runs = list_job_runs(client, ["train-model"], [j.name for j in jobs],
                             [StateType.SCHEDULED])
    assert sorted(runs) == sorted(j.name for j in jobs) and all(len(r) == 1 for r in runs.values())


# -- runs that did not complete ----------------------------------------------------------------


def end_run(run: FlowRun, state: Callable[..., Any]) -> None:
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run.id, state(), force=True)


@pytest.mark.parametrize("ending", [Crashed, Failed, Cancelled], ids=lambda s: s.__name__)
def test_a_run_that_did_not_complete_is_made_again_resuming_and_a_completed_one_is_not(
    deployments: None, ending: Callable[..., Any]
) -> None:
    name = f"again-{ending.__name__.lower()}"
    jobs = [spec(name)]
    schedule(wants(jobs, low_hour=5))
    (first,) = scheduled(name)
    end_run(first, Running)
    end_run(first, ending)  # e.g. its worker was killed: the server marked it crashed

    (outcome,) = schedule(wants(jobs, low_hour=5)).values()  # the same plan again
    assert outcome.status == "scheduled", outcome
    (retry,) = scheduled(name)
    assert retry.id != first.id
    assert retry.idempotency_key == f"{first.idempotency_key}-retry-1"
    store = retry.parameters["config"]["checkpoint_store"]
    assert retry.parameters["resume_from"] == f"{store}/{name}/{first.id}"
    assert retry.parameters["config"]["allow_fresh_start"] is True  # no checkpoint: step 0
    assert f"resumes from the checkpoints of run {first.id}" in outcome.note

    end_run(retry, Running)
    end_run(retry, Crashed)  # again: it resumes in the same folder (its own resume_from)
    schedule(wants(jobs, low_hour=5))
    (third,) = scheduled(name)
    assert third.idempotency_key == f"{first.idempotency_key}-retry-2"
    assert third.parameters["resume_from"] == f"{store}/{name}/{first.id}"

    end_run(third, Running)
    end_run(third, Completed)
    (done,) = schedule(wants(jobs, low_hour=5)).values()
    assert done.status == "unchanged" and done.flow_run_id == str(third.id)
    assert scheduled(name) == []


def test_a_scheduled_rest_and_a_running_run_are_left_alone(deployments: None) -> None:
    jobs = [spec("alone-rest"), spec("alone-running")]
    schedule(wants(jobs, low_hour=5))
    (rest,) = scheduled("alone-rest")
    (running,) = scheduled("alone-running")
    with get_client(sync_client=True) as client:
        client.update_flow_run(rest.id, tags=[*rest.tags, RESUME_TAG])
    end_run(running, Running)
    out = schedule(wants([spec("alone-rest", within="30h"), spec("alone-running")],
                         low_hour=9))
    assert out["alone-rest"].status == "unchanged" and "rest of a stopped run" in (
        out["alone-rest"].note)
    assert out["alone-running"].status == "running"
    assert [r.id for r in scheduled("alone-rest")] == [rest.id]
    assert scheduled("alone-running") == []


def test_the_run_made_again_after_a_crash_resumes_in_the_crashed_runs_folder(
    deployments: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole path in-process: a run trains to step 1000 and is marked crashed; the planner
    makes a new run; that run, given what the planner gave it, continues from step 1000 in the
    crashed run's checkpoint folder (tiny_train's harness resumes from the latest checkpoint)."""
    from carbonshift.checkpoint import CheckpointManager, LocalStore
    from carbonshift.config import TrainingConfig
    from carbonshift.plan import PLANS
    from flows.train import train_model
    from tests.flows.test_train_flow import config, job, minute_csv, plan_for

    now = datetime.now(UTC)
    minute_csv(tmp_path / "fc", now, 200.0)
    spec_ = job("crash-resume")
    short = config(tmp_path, tmp_path / "fc")
    short.options["steps"] = "1000"
    crashed = train_model(spec_, plan_for(spec_, tmp_path / "fc", now), None, short,
                          return_state=True)
    crashed_id = crashed.state_details.flow_run_id
    assert crashed_id is not None
    with get_client(sync_client=True) as client:  # the job's run, then its worker died
        client.update_flow_run(crashed_id, tags=["carbonshift", f"carbonshift-job:{spec_.name}"])
        client.set_flow_run_state(crashed_id, Crashed(), force=True)
    folder = tmp_path / "ckpt" / spec_.name
    first = CheckpointManager(LocalStore(folder), str(crashed_id)).latest()
    assert first is not None and first.step == 1000

    training = config(tmp_path, tmp_path / "fc").model_dump(mode="json")  # 3000 steps
    plan = plan_for(spec_, tmp_path / "fc", datetime.now(UTC))
    (outcome,) = schedule([Want(plan, spec_, DEFAULT, training)]).values()
    assert outcome.status == "scheduled" and str(crashed_id) in outcome.note
    (again,) = scheduled(spec_.name)
    p = again.parameters
    assert p["resume_from"] == f"{tmp_path / 'ckpt'}/{spec_.name}/{crashed_id}"

    from carbonshift.trainer import Harness

    resumed_at: list[int] = []
    real_resume = Harness.resume

    def spy(self: Harness) -> int:
        resumed_at.append(real_resume(self))
        return resumed_at[-1]

    monkeypatch.setattr(Harness, "resume", spy)
    state = train_model(JobSpec.model_validate(p["job"]), PLANS.validate_python(p["plan"]),
                        p["resume_from"], TrainingConfig.model_validate(p["config"]),
                        return_state=True)
    assert state.type == StateType.COMPLETED, state.message
    assert resumed_at == [1000]  # the trainer loaded the crashed run's checkpoint
    done = CheckpointManager(LocalStore(folder), str(crashed_id)).latest()
    assert done is not None and done.step == 3000  # continued where the crashed run was
    assert [d.name for d in folder.iterdir()] == [str(crashed_id)]  # and nowhere else
