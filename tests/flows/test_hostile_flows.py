"""The planning flow under hostile and unlucky input: spread plans it cannot run, a training
deployment that rejects the new run mid re-plan, a delete that fails, bad jobs among good ones
and a bad provider chain. Real server (the session harness), real deployments; the one fake is a
client whose deletes fail, because a real server offers no way to make a delete fail."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import DeploymentUpdate
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.objects import StateType

from carbonshift.catalog import default_catalog
from carbonshift.config import ForecastConfig, PlanningConfig
from carbonshift.job import JobSpec
from carbonshift.planner import plan_jobs
from carbonshift.traces import read_traces, traces_in
from flows.api import TrainingNotScheduled, schedule_training
from flows.plan import SchedulingFailed, plan_training
from tasks.scheduling import job_runs, schedule_one
from tests.flows.conftest import NOW, write_trace

pytestmark = pytest.mark.integration
DEPLOYMENT = "train-model/default"


def spec(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "work": {"duration": "1h", "instance_type": "g5.xlarge"},
            "within": "24h", "regions": ["aws:eu-west-2"], **extra}


def config(traces: Path, deployment: str = DEPLOYMENT, **forecast: Any) -> PlanningConfig:
    settings = {"providers": ["replay", "static"], "traces_dir": str(traces),
                "replay_as_of_now": False, "cache_dir": str(traces / "cache"), **forecast}
    return PlanningConfig(forecast=ForecastConfig(**settings), training_deployment=deployment)


def artifact(key: str) -> Any:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[key])))
    assert found, f"no artifact {key}"
    return sorted(found, key=lambda a: a.created)[-1].data


def summary_rows() -> dict[str, dict[str, Any]]:
    return {r["job"]: r for r in json.loads(artifact("plan-summary"))}


# Each test plans over its own window length, and re-plans after a moved forecast half an hour
# later (its disk cache cleared), so no test is served another's forecast.
LATER = NOW + timedelta(minutes=31)


def move_forecast(traces: Path, low_hour: int) -> None:
    write_trace(traces, "GB", low_hour=low_hour)
    for path in (traces / "cache").rglob("*.json"):
        path.unlink()


# -- spread plans ------------------------------------------------------------------------------


def test_spread_plans_are_refused_whole_with_a_clear_line(deployment: None,
                                                         tmp_path: Path) -> None:
    for zone, hour in (("GB", 3), ("DE", 3), ("IE", 5)):
        write_trace(tmp_path, zone, low_hour=hour)
    job = spec("flow-spread", placement="spread", replicas=2, within="23h",
               regions=["aws:eu-west-2", "aws:eu-central-1", "aws:eu-west-1"])
    (outcome,) = plan_training(jobs=[job], queue_file=None, config=config(tmp_path), now=NOW)
    assert outcome.status == "not-scheduled" and outcome.flow_run_id is None
    assert "placement: spread" in outcome.note and "placement: colocate" in outcome.note
    assert job_runs(DEPLOYMENT, "flow-spread", [StateType.SCHEDULED]) == []  # not one replica
    row = summary_rows()["flow-spread"]
    assert row["status"] == "not-scheduled" and "placement: spread" in row["run"]
    assert row["region"] == "aws:eu-west-2, aws:eu-central-1"  # the plan itself is shown
    markdown = artifact("plan-flow-spread")
    assert "**Training run not scheduled:** placement: spread" in markdown
    with pytest.raises(TrainingNotScheduled, match="placement: spread"):
        schedule_training(JobSpec.model_validate(job), config=config(tmp_path))


# -- re-planning safety ------------------------------------------------------------------------


def set_schema(name: str, schema: dict[str, Any]) -> None:
    with get_client(sync_client=True) as client:
        found = client.read_deployment_by_name(name)
        client.update_deployment(found.id, DeploymentUpdate(
            parameter_openapi_schema=schema, enforce_parameter_schema=True))


def test_a_failed_create_keeps_the_old_run(prefect_server: None, tmp_path: Path) -> None:
    from flows.train import train_model

    name = "train-model/flaky"
    train_model.to_deployment(name="flaky", enforce_parameter_schema=True).apply()
    with get_client(sync_client=True) as client:
        good = client.read_deployment_by_name(name).parameter_openapi_schema
    jobs = [spec("flow-flaky", within="22h")]
    write_trace(tmp_path, "GB", low_hour=6)
    plan_training(jobs=jobs, queue_file=None, config=config(tmp_path, name), now=NOW)
    (old,) = job_runs(name, "flow-flaky", [StateType.SCHEDULED])

    # The server now refuses every new run of the deployment: a real 409 on create.
    set_schema(name, {"type": "object", "properties": {"job": {"type": "integer"}}})
    move_forecast(tmp_path, low_hour=9)
    later = LATER
    with pytest.raises(SchedulingFailed, match="flow-flaky: could not create the training run"):
        plan_training(jobs=jobs, queue_file=None, config=config(tmp_path, name), now=later)
    (kept,) = job_runs(name, "flow-flaky", [StateType.SCHEDULED])
    assert kept.id == old.id, "the job lost its run"
    row = summary_rows()["flow-flaky"]
    assert row["status"] == "failed" and f"kept the scheduled run {old.id}" in row["run"]

    set_schema(name, good)  # the server is fine again: the next re-plan replaces the run
    (outcome,) = plan_training(jobs=jobs, queue_file=None, config=config(tmp_path, name),
                               now=later)
    assert outcome.status == "replaced"
    (new,) = job_runs(name, "flow-flaky", [StateType.SCHEDULED])
    assert new.expected_start_time == NOW + timedelta(hours=9)


class DeletesFail:
    """The real client, except that deleting a flow run fails as a dropped connection would."""

    def __init__(self, client: SyncPrefectClient) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def delete_flow_run(self, flow_run_id: UUID) -> None:
        import httpx

        raise httpx.ConnectError("connection reset while deleting")


def test_a_failed_delete_is_visible_and_the_next_replan_cleans_up(deployment: None,
                                                                 tmp_path: Path) -> None:
    job = JobSpec.model_validate(spec("flow-twice", within="21h"))
    write_trace(tmp_path, "GB", low_hour=4)
    plan_training(jobs=[job], queue_file=None, config=config(tmp_path), now=NOW)
    (old,) = job_runs(DEPLOYMENT, "flow-twice", [StateType.SCHEDULED])

    move_forecast(tmp_path, low_hour=7)
    traces = read_traces(traces_in(tmp_path))
    forecasts = {"aws:eu-west-2": traces["GB"]}
    (plan,) = plan_jobs([job], forecasts, now=LATER, catalog=default_catalog())
    with get_client(sync_client=True) as client:
        outcome = schedule_one(plan, job, DEPLOYMENT, client=DeletesFail(client))  # type: ignore[arg-type]
    assert "WARNING: could not remove the replaced run" in outcome.note and str(old.id) in (
        outcome.note)
    runs = job_runs(DEPLOYMENT, "flow-twice", [StateType.SCHEDULED])
    assert {r.id for r in runs} == {old.id, UUID(outcome.flow_run_id or "")}

    (again,) = plan_training(jobs=[job], queue_file=None, config=config(tmp_path), now=LATER)
    assert again.flow_run_id == outcome.flow_run_id and str(old.id) in again.note
    (left,) = job_runs(DEPLOYMENT, "flow-twice", [StateType.SCHEDULED])
    assert left.expected_start_time == NOW + timedelta(hours=7)


def test_a_changed_job_replaces_the_run_with_stale_parameters(deployment: None,
                                                              tmp_path: Path) -> None:
    write_trace(tmp_path, "GB", low_hour=5)
    first = spec("flow-entry", within="20h", entrypoint="carbonshift.examples.tiny_train:train")
    plan_training(jobs=[first], queue_file=None, config=config(tmp_path), now=NOW)
    same = plan_training(jobs=[first], queue_file=None, config=config(tmp_path), now=NOW)
    assert same[0].status == "unchanged"
    changed = {**first, "entrypoint": "python -m my_new_trainer"}
    (outcome,) = plan_training(jobs=[changed], queue_file=None, config=config(tmp_path), now=NOW)
    assert outcome.status == "replaced"
    (run,) = job_runs(DEPLOYMENT, "flow-entry", [StateType.SCHEDULED])
    assert run.parameters["job"]["entrypoint"] == "python -m my_new_trainer"


# -- bad input ---------------------------------------------------------------------------------


def test_bad_jobs_are_refused_and_the_rest_planned(deployment: None, tmp_path: Path) -> None:
    write_trace(tmp_path, "GB", low_hour=2)
    jobs = [
        spec("flow-ok", within="19h"),
        spec("flow-util", utilisation=7),
        spec("flow-cross", earliest_start=f"{NOW + timedelta(hours=5):%Y-%m-%dT%H:%MZ}",
             deadline=f"{NOW + timedelta(hours=1):%Y-%m-%dT%H:%MZ}"),
        spec("flow-urgent-int", within="2h", urgent=True, interruptible=True),
        spec("flow-bogus", providers=["bogus"]),
        spec("flow-replicas", replicas=3),
        "not a job",
    ]
    jobs[2].pop("within")
    result = {s.job: s for s in plan_training(jobs=jobs, queue_file=None,
                                              config=config(tmp_path), now=NOW)}
    assert result["flow-ok"].status == "scheduled"
    rows = summary_rows()
    refused = {job: row for job, row in rows.items() if row["field"]}
    assert refused["flow-util"]["field"] == "utilisation"
    assert refused["flow-cross"]["field"] == "deadline"
    assert "earliest_start" in refused["flow-cross"]["run"]
    assert refused["flow-bogus"]["field"].startswith("providers")
    assert refused["flow-replicas"]["field"] == "replicas"
    assert "jobs[6]" in refused
    for job, row in refused.items():
        assert row["status"] == "not-scheduled"
        assert row["run"].startswith(f"job {job!r}: {row['field']}: "), row["run"]
        assert "\n" not in row["run"] and "Traceback" not in row["run"]
        assert result[job].status == "not-scheduled"
    # Whatever job.py's validators accept for urgent + interruptible, it is planned or refused
    # on its own, never failing the run.
    assert "flow-urgent-int" in result


def test_an_unreadable_queue_file_fails_the_run_in_one_line_and_plans_the_given_jobs(
    deployment: None, tmp_path: Path
) -> None:
    # Seen on main: a missing queue file raised out of the load task (a traceback) and the
    # given jobs were never planned.
    write_trace(tmp_path, "GB", low_hour=4)
    missing = tmp_path / "nowhere.yaml"
    state = plan_training(jobs=[spec("flow-given", within="17h")], queue_file=str(missing),
                          config=config(tmp_path), now=NOW, return_state=True)
    assert state.is_failed()
    assert state.message is not None and "\n" not in state.message
    assert state.message.startswith(f"queue_file: {missing}: cannot read the job file")
    rows = summary_rows()
    assert rows["flow-given"]["status"] == "scheduled"
    assert rows[str(missing)]["field"] == "queue_file"


@pytest.mark.parametrize(("forecast", "message"), [
    ({"providers": ["replay", "bogus"]},
     "forecast.providers.1: unknown provider 'bogus': use one of electricitymaps"),
    ({"providers": []}, "forecast.providers: empty"),
    ({"providers": ["carbon-aware-sdk"]}, "forecast.base_urls: carbon-aware-sdk is self-hosted"),
])
def test_a_bad_provider_chain_fails_fast_with_one_line(prefect_server: None, tmp_path: Path,
                                                       forecast: dict[str, Any],
                                                       message: str) -> None:
    raw = {"forecast": {"traces_dir": str(tmp_path), **forecast}}
    with pytest.raises(Exception) as caught:
        plan_training(jobs=[spec("flow-cfg")], queue_file=None, config=raw, now=NOW)
    assert message in str(caught.value)
    assert "Traceback" not in str(caught.value)
