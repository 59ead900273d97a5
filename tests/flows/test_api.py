from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.states import Completed

from carbonshift.config import ForecastConfig, PlanningConfig
from carbonshift.job import JobSpec
from flows.api import (
    TrainingNotScheduled,
    aschedule_training,
    await_training,
    schedule_training,
    wait_for_training,
)
from flows.examples.retrain import retrain_pipeline
from tests.flows.conftest import write_trace

pytestmark = pytest.mark.integration


def replay_config(traces: Path) -> PlanningConfig:
    return PlanningConfig(forecast=ForecastConfig(providers=["replay", "static"],
                                                  traces_dir=str(traces),
                                                  replay_as_of_now=False,
                                                  cache_dir=str(traces / "cache")))


def spec(name: str, **extra: object) -> JobSpec:
    return JobSpec.model_validate({"name": name, "work": {"duration": "1h",
                                   "instance_type": "g5.xlarge"}, "within": "24h",
                                   "regions": ["aws:eu-west-2"], **extra})


def test_schedule_training_returns_the_scheduled_run(deployment: None, tmp_path: Path) -> None:
    write_trace(tmp_path, "GB", low_hour=4)
    run = schedule_training(spec("api-a"), config=replay_config(tmp_path))
    assert run.state is not None and run.state.type == StateType.SCHEDULED
    assert "carbonshift-job:api-a" in run.tags
    again = asyncio.run(aschedule_training(spec("api-a"), config=replay_config(tmp_path)))
    assert again.id == run.id  # same job, same forecast: the same run


def test_wait_returns_the_final_state(deployment: None, tmp_path: Path) -> None:
    write_trace(tmp_path, "GB", low_hour=4)
    run = schedule_training(spec("api-b"), config=replay_config(tmp_path))
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run.id, Completed(), force=True)
    assert wait_for_training(run, poll_s=0.01).type == StateType.COMPLETED
    assert asyncio.run(await_training(run.id, poll_s=1)).type == StateType.COMPLETED


def test_unplannable_job_raises(deployment: None, tmp_path: Path) -> None:
    write_trace(tmp_path, "GB", low_hour=4)
    with pytest.raises(TrainingNotScheduled, match="deadline"):
        schedule_training(spec("api-c", within="10m"), config=replay_config(tmp_path))


def test_example_pipeline_schedules_retraining(deployment: None, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # The example uses the flow's default forecast config: bundled traces replayed as of now.
    monkeypatch.setenv("CARBONSHIFT_CACHE_DIR", str(tmp_path))
    run_id = retrain_pipeline(dataset_version="2026-11-27")
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)
    assert run.state is not None and run.state.type == StateType.SCHEDULED
    assert run.parameters["job"]["name"] == "retrain-2026-11-27"
