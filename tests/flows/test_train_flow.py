"""The training flow's wiring in-process under the test server: train, watch, account; a scripted
forecast miss stops the run, schedules the rest, and the resumed run ends bit-exact. The run's
rules are tested in the core (tests/run) without Prefect and without waiting."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType

from carbonshift import ledger
from carbonshift.catalog import default_catalog
from carbonshift.checkpoint import CheckpointManager, LocalStore
from carbonshift.compute import LaunchRequest, LocalCompute
from carbonshift.config import ForecastConfig, MonitorRule, TrainingConfig
from carbonshift.examples import tiny_train
from carbonshift.job import JobSpec
from carbonshift.plan import FeasiblePlan
from carbonshift.planner import plan_jobs
from carbonshift.traces import read_traces, traces_in
from carbonshift.training import TrainingContext
from flows.train import release_on_hook, train_model
from tasks.scheduling import job_runs

pytestmark = pytest.mark.integration
STEPS = 3000


def minute_csv(folder: Path, now: datetime, value: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=5)
    rows = ["timestamp,g_per_kwh"] + [
        f"{start + timedelta(minutes=m):%Y-%m-%dT%H:%M:%S}Z,{value}" for m in range(24 * 60)]
    (folder / "GB_minutes.csv").write_text("\n".join(rows) + "\n")


def job(name: str, entrypoint: str = "carbonshift.examples.tiny_train:train") -> JobSpec:
    return JobSpec.model_validate({
        "name": name, "work": {"duration": "10m", "instance_type": "g5.xlarge"},
        "within": "6h", "regions": ["aws:eu-west-2"], "urgent": True, "entrypoint": entrypoint})


def plan_for(spec: JobSpec, traces: Path, now: datetime):  # type: ignore[no-untyped-def]
    forecasts = {"aws:eu-west-2": read_traces(traces_in(traces))["GB"]}
    (plan,) = plan_jobs([spec], forecasts, now=now, catalog=default_catalog())
    assert isinstance(plan, FeasiblePlan), plan
    return plan


def config(tmp: Path, actual_traces: Path, **monitor: float) -> TrainingConfig:
    return TrainingConfig(
        checkpoint_store=str(tmp / "ckpt"), compute_state_dir=str(tmp / "compute"),
        forecast=ForecastConfig(providers=["replay"], traces_dir=str(actual_traces),
                                replay_as_of_now=False, cache_dir=str(tmp / "cache")),
        monitor=MonitorRule(**{"interval_s": 1.0, "grace_s": 0.0, "window_s": 60.0,
                                   **monitor}),
        options={"steps": str(STEPS)})


def latest_weights(root: Path, name: str) -> dict[str, torch.Tensor]:
    """The newest checkpoint under root/name (a run's own folder, or a job's run folders)."""
    found = None
    for folder in [root / name, *sorted((root / name).glob("*"))]:
        if folder.is_dir():
            candidate = CheckpointManager(LocalStore(folder.parent), folder.name).latest()
            if candidate is not None and (found is None or candidate.step > found.step):
                found = candidate
    assert found is not None
    weights: dict[str, torch.Tensor] = torch.load(io.BytesIO(found.parts["model.pt"]),
                                                  weights_only=True)
    return weights


def artifact_data(key: str) -> str:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(
            any_=[key])))
    assert found, key
    return str(sorted(found, key=lambda a: a.created)[-1].data)


def test_trains_watches_and_accounts(deployment: None, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    minute_csv(tmp_path / "fc", now, 200.0)
    spec = job("train-ok")
    state = train_model(spec, plan_for(spec, tmp_path / "fc", now), None,
                        config(tmp_path, tmp_path / "fc"), return_state=True)
    assert state.type == StateType.COMPLETED and state.name == "Completed"
    assert LocalCompute(tmp_path / "compute").held() == []  # released
    text = artifact_data("emissions-train-ok")
    assert "| energy, instance (estimated; before PUE) |" in text
    assert "estimate: 1 x A10G 300 W" in text
    assert "Intensity used: actual" in text
    assert latest_weights(tmp_path / "ckpt", "train-ok")  # the final checkpoint is there
    # The run's ledger record, in the checkpoint store, read back as a report would.
    (record,) = ledger.read(LocalStore(tmp_path / "ckpt"), now - timedelta(hours=1),
                            now + timedelta(days=1))
    run_id = str(state.state_details.flow_run_id)
    assert (record.run_id, record.job_id, record.previous_run_id) == (run_id, run_id, None)
    assert record.outcome == "completed" and record.job == "train-ok"
    assert record.steps_done == record.total_steps == STEPS
    assert record.energy_kwh > 0 and not record.energy_measured and record.signal == "lca"
    assert record.intervals_on_forecast == 0 and record.intervals == len(record.profile)
    assert record.emissions_kg == pytest.approx(record.energy_kwh * 0.200)
    run_now, best = record.counterfactuals
    # Started at once at home on actuals of 200 g/kWh: the same; the window runs 6 h on.
    assert run_now.region == "aws:eu-west-2" and not run_now.pending
    assert run_now.emissions_kg == pytest.approx(record.emissions_kg, rel=1e-6)
    assert best.pending and best.emissions_kg is None
    assert record.cost_usd is not None and record.cost_usd > 0
    assert f"run {run_id}" in text and "| share of possible savings | pending |" in text


def test_forecast_miss_reschedules_and_resumes_bit_exact(deployment: None, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    minute_csv(tmp_path / "fc", now, 100.0)     # what the plan was made on
    minute_csv(tmp_path / "actual", now, 300.0)  # what the grid did: +200%
    spec = job("train-miss", "tests.gated_train:train")  # holds at step 1000 until stopped
    held = config(tmp_path, tmp_path / "actual")
    held.options["gate_step"] = "1000"
    first = train_model(spec, plan_for(spec, tmp_path / "fc", now), None, held,
                        return_state=True)
    assert first.type == StateType.COMPLETED and first.name == "Rescheduled", first.message
    assert "above the forecast" in (first.message or "")
    assert LocalCompute(tmp_path / "compute").held() == []
    assert "Stopped by the monitor" in artifact_data("emissions-train-miss")

    (rest,) = [r for r in job_runs("train-model/default", "train-miss", [StateType.SCHEDULED])]
    params = rest.parameters
    assert params["resume_from"].startswith("file://")
    assert params["config"]["replans"] == 1
    assert 0 < int(params["resume_from"].rsplit("-", 1)[1]) <= 1000  # held there at the latest
    first_id = str(first.state_details.flow_run_id)
    assert params["config"]["previous_run_id"] == params["config"]["job_id"] == first_id
    assert params["config"]["submitted_at"] is not None
    # The rest of the work, to the same deadline.
    assert params["job"]["work"]["duration"] < 600
    params["config"]["monitor"]["threshold"] = 100.0  # the grid is what it is: carry on now
    second = train_model(JobSpec.model_validate(params["job"]),
                         params["plan"], params["resume_from"],
                         TrainingConfig.model_validate(params["config"]), return_state=True)
    assert second.type == StateType.COMPLETED and second.name == "Completed", second.message
    # Two ledger records, the rest linked to the segment it resumes.
    segments = ledger.read(LocalStore(tmp_path / "ckpt"), now - timedelta(hours=1),
                           now + timedelta(days=1))
    stopped, resumed = sorted(segments, key=lambda r: r.started_at)
    assert (stopped.run_id, stopped.outcome, stopped.previous_run_id) == (
        first_id, "rescheduled", None)
    assert resumed.outcome == "completed" and resumed.run_id == str(
        second.state_details.flow_run_id)
    assert resumed.previous_run_id == resumed.job_id == stopped.job_id == first_id
    assert resumed.submitted_at == stopped.submitted_at  # the delay counts from the first plan
    assert resumed.delay_s >= stopped.delay_s
    assert stopped.steps_done <= 1000 and resumed.steps_done == STEPS

    whole = TrainingContext(CheckpointManager(LocalStore(tmp_path / "whole"), "w"),
                            options={"steps": str(STEPS)})
    assert tiny_train.train(whole).completed
    a = latest_weights(tmp_path / "whole", "w")
    b = latest_weights(tmp_path / "ckpt", "train-miss")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_hooks_release_compute_by_run_id(tmp_path: Path) -> None:
    compute = LocalCompute(tmp_path / "compute")
    compute.provision(LaunchRequest("j", "run-77", "aws:eu-west-2", "g5.xlarge"))
    cfg = TrainingConfig(compute_state_dir=str(tmp_path / "compute"))
    fake_run = SimpleNamespace(id="run-77", parameters={"config": json.loads(
        cfg.model_dump_json())})
    release_on_hook(None, fake_run, None)  # as the worker calls it: no memory of the run
    assert compute.held() == []


def test_resume_from_nowhere_fails_the_run_naming_it(deployment: None, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    minute_csv(tmp_path / "fc", now, 200.0)
    spec = job("train-nowhere")
    folder = tmp_path / "ckpt" / "train-nowhere" / "old-run" / "ckpt-000000000042"
    folder.mkdir(parents=True)
    (folder / "model.pt").write_bytes(b"truncated")  # the manifest promises 10 other bytes
    (folder / "MANIFEST.json").write_text(json.dumps(
        {"step": 42, "parts": {"model.pt": {"bytes": 10, "sha256": "0" * 64}}}))
    nowhere = f"file://{folder}"
    state = train_model(spec, plan_for(spec, tmp_path / "fc", now), nowhere,
                        config(tmp_path, tmp_path / "fc"), return_state=True)
    assert state.type == StateType.FAILED
    assert f"resume_from {nowhere}: no valid checkpoint" in (state.message or "")
    assert "model.pt does not match its manifest" in (state.message or "")
    assert LocalCompute(tmp_path / "compute").held() == []
    # Asked to start afresh, it does.
    fresh = config(tmp_path, tmp_path / "fc").model_copy(update={"allow_fresh_start": True})
    state = train_model(spec, plan_for(spec, tmp_path / "fc", now), nowhere, fresh,
                        return_state=True)
    assert state.type == StateType.COMPLETED, state.message
    found = CheckpointManager(LocalStore(tmp_path / "ckpt" / "train-nowhere"), "old-run").latest()
    assert found is not None and found.step == STEPS


def test_a_rest_that_cannot_be_scheduled_is_recorded_stopped(deployment: None,
                                                             tmp_path: Path) -> None:
    now = datetime.now(UTC)
    minute_csv(tmp_path / "fc", now, 100.0)
    minute_csv(tmp_path / "actual", now, 300.0)
    spec = job("train-nodeploy", "tests.gated_train:train")
    held = config(tmp_path, tmp_path / "actual").model_copy(
        update={"training_deployment": "train-model/missing"})
    held.options["gate_step"] = "200"
    state = train_model(spec, plan_for(spec, tmp_path / "fc", now), None, held,
                        return_state=True)
    assert state.type == StateType.COMPLETED and state.name == "Stopped", state.message
    assert "no deployment train-model/missing" in (state.message or "")
    (record,) = ledger.read(LocalStore(tmp_path / "ckpt"), now - timedelta(hours=1),
                            now + timedelta(days=1))
    assert record.outcome == "stopped"  # first settled as rescheduled, restated by the re-plan
    assert record.run_id == str(state.state_details.flow_run_id)
    assert record.stopped_reason is not None


def test_a_failed_run_still_publishes_its_energy_and_ledger_record(
        deployment: None, tmp_path: Path) -> None:
    from carbonshift import ledger

    now = datetime.now(UTC)
    minute_csv(tmp_path / "fc", now, 200.0)
    spec = job("train-boom", entrypoint="tests.flows.failing_train:train")
    state = train_model(spec, plan_for(spec, tmp_path / "fc", now), None,
                        config(tmp_path, tmp_path / "fc"), return_state=True)
    assert state.type == StateType.FAILED and "illegal memory access" in (state.message or "")
    (record,) = ledger.read(LocalStore(tmp_path / "ckpt"), now - timedelta(hours=1),
                            now + timedelta(days=1))
    assert record.outcome == "failed"
    table = artifact_data("emissions-train-boom")
    assert "Training failed" in table and "ledger: failed" in table and "kWh" in table
    assert LocalCompute(tmp_path / "compute").held() == []
