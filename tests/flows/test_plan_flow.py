"""Planning flow wiring under one test server: forecasts from a replayed trace, runs scheduled
against a registered (worker-less) train-model deployment, artifacts read back."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.objects import StateType
from prefect.states import Running

from carbonshift.config import ForecastConfig, PlanningConfig
from carbonshift.job import JobSpec
from flows.plan import plan_training
from tasks.scheduling import job_runs
from tests.flows.conftest import NOW, write_trace

pytestmark = pytest.mark.integration
DEPLOYMENT = "train-model/default"


def job(name: str, **extra: Any) -> JobSpec:
    spec = {"name": name, "work": {"duration": "1h", "instance_type": "g5.xlarge"},
            "within": "24h", "regions": ["aws:eu-west-2"], **extra}
    return JobSpec.model_validate(spec)


def config(traces: Path) -> PlanningConfig:
    return PlanningConfig(forecast=ForecastConfig(
        providers=["replay", "static"], traces_dir=str(traces), replay_as_of_now=False,
        cache_dir=str(traces / "cache")))


def artifact(key: str) -> Any:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[key])))
    assert found, f"no artifact {key}"
    return sorted(found, key=lambda a: a.created)[-1]


def test_plans_schedule_runs_and_publish_artifacts(deployment: None, tmp_path: Path) -> None:
    write_trace(tmp_path, "GB", low_hour=5)
    jobs = [job("flow-a"), job("flow-late", within="30m"), job("flow-urgent", urgent=True)]
    first = {s.job: s for s in plan_training(jobs=jobs, queue_file=None, config=config(tmp_path),
                                              now=NOW)}
    assert first["flow-a"].status == "scheduled"
    assert first["flow-late"].status == "not-scheduled"
    assert "deadline" in first["flow-late"].note
    (run,) = job_runs(DEPLOYMENT, "flow-a", [StateType.SCHEDULED])
    assert run.expected_start_time == NOW + timedelta(hours=5)
    assert run.parameters["plan"]["chosen"]["region"] == "aws:eu-west-2"
    assert run.parameters["job"]["name"] == "flow-a"
    assert run.parameters["plan"]["forecast"]["g_per_kwh"] == [50.0]  # for the run's monitor
    (urgent,) = job_runs(DEPLOYMENT, "flow-urgent", [StateType.SCHEDULED])
    assert urgent.expected_start_time == NOW

    table = artifact("plan-summary").data
    assert isinstance(table, str), type(table)
    rows = {r["job"]: r for r in json.loads(table)}
    assert rows["flow-a"]["start_utc"] == f"{NOW + timedelta(hours=5):%Y-%m-%d %H:%M}"
    assert rows["flow-a"]["forecast_g_per_kwh"] == 50.0
    assert rows["flow-a"]["status"] == "scheduled"
    assert rows["flow-late"]["status"] == "not-scheduled"
    markdown = artifact("plan-flow-late").data
    assert "not scheduled" in markdown and "deadline" in markdown
    assert artifact("plan-chart-flow-a").data.startswith("data:image/svg+xml;base64,")


def test_replanning_is_idempotent_and_replaces_moved_runs(deployment: None, tmp_path: Path) -> None:
    write_trace(tmp_path, "GB", low_hour=6)
    jobs = [job("flow-b")]
    plan_training(jobs=jobs, queue_file=None, config=config(tmp_path), now=NOW)
    again = plan_training(jobs=jobs, queue_file=None, config=config(tmp_path), now=NOW)
    assert again[0].status == "unchanged"
    assert len(job_runs(DEPLOYMENT, "flow-b", [StateType.SCHEDULED])) == 1

    write_trace(tmp_path, "GB", low_hour=9)  # the forecast moved: so does the plan
    for path in (tmp_path / "cache").rglob("*.json"):
        path.unlink()
    moved = plan_training(jobs=jobs, queue_file=None, config=config(tmp_path),
                          now=NOW + timedelta(minutes=31))
    assert moved[0].status == "replaced"
    (run,) = job_runs(DEPLOYMENT, "flow-b", [StateType.SCHEDULED])
    assert run.expected_start_time == NOW + timedelta(hours=9)


def test_running_runs_are_left_alone(deployment: None, tmp_path: Path) -> None:
    write_trace(tmp_path, "GB", low_hour=3)
    jobs = [job("flow-c")]
    plan_training(jobs=jobs, queue_file=None, config=config(tmp_path), now=NOW)
    (run,) = job_runs(DEPLOYMENT, "flow-c", [StateType.SCHEDULED])
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run.id, Running(), force=True)
    again = plan_training(jobs=jobs, queue_file=None, config=config(tmp_path), now=NOW)
    assert again[0].status == "running"
    assert job_runs(DEPLOYMENT, "flow-c", [StateType.SCHEDULED]) == []


def test_bad_job_file_names_job_and_field_and_plans_the_rest(deployment: None,
                                                             tmp_path: Path) -> None:
    write_trace(tmp_path, "GB", low_hour=2)
    queue = tmp_path / "jobs.yaml"
    queue.write_text(
        "jobs:\n"
        "  - {name: flow-good, work: {duration: 1h, instance_type: g5.xlarge}, within: 12h,"
        " regions: [aws:eu-west-2]}\n"
        "  - {name: flow-bad, work: {duration: 1h, instance_type: g5.xlarge}, within: 12h,"
        " regions: [aws:eu-west-2], utilisation: 7}\n"
    )
    result = {s.job: s for s in plan_training(queue_file=str(queue), config=config(tmp_path),
                                              now=NOW)}
    assert result["flow-good"].status == "scheduled"
    assert result["flow-bad"].status == "not-scheduled"
    assert "job 'flow-bad': utilisation:" in result["flow-bad"].note
    assert "utilisation" in artifact("plan-flow-bad").data


def test_a_big_queue_gets_one_explanation_artifact(
    deployment: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tasks.planning

    monkeypatch.setattr(tasks.planning, "PER_JOB_ARTIFACTS_UP_TO", 1)  # "big" is 2 jobs here
    write_trace(tmp_path, "GB", low_hour=4)
    quiet = config(tmp_path).model_copy(update={"schedule": False})
    plan_training(jobs=[job("flow-big-a"), job("flow-big-b", within="10m")], queue_file=None,
                  config=quiet, now=NOW)
    text = artifact("plan-explanations").data
    assert "# flow-big-a" in text and "# flow-big-b: not scheduled" in text
    rows = {r["job"] for r in json.loads(artifact("plan-summary").data)}
    assert {"flow-big-a", "flow-big-b"} <= rows
    with get_client(sync_client=True) as client:
        per_job = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(
            any_=["plan-flow-big-a", "plan-chart-flow-big-a", "plan-flow-big-b"])))
    assert per_job == []
