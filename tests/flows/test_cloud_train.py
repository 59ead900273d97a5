"""The training flow on a cloud, end to end against the emulators: EC2 on moto launches the
instance with the bootstrap as user data, the emulation switch runs it as the VM, which trains
against an S3 store on moto; the flow follows it through the store, accounts its energy and
releases the instance. Capacity errors on the chosen option move the run to the next one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from prefect.client.schemas.objects import StateType

import tasks.training
from carbonshift.catalog import default_catalog
from carbonshift.checkpoint import CheckpointManager, open_store
from carbonshift.compute import LaunchRequest
from carbonshift.config import ForecastConfig, MonitorRule, TrainingConfig
from carbonshift.job import JobSpec
from carbonshift.plan import FeasiblePlan
from carbonshift.planner import plan_jobs
from carbonshift.runs import CloudAccess
from carbonshift.traces import read_traces, traces_in
from flows.train import release_on_hook, train_model
from tests.compute.faults import fail

pytestmark = [pytest.mark.integration, pytest.mark.slow]
AL2023 = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.1-x86_64"
BUCKET = "carbonshift-cloud-test"
STEPS = 400


def traces(folder: Path, now: datetime, zones: dict[str, float]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=5)
    for zone, value in zones.items():
        rows = ["timestamp,g_per_kwh"] + [
            f"{start + timedelta(minutes=m):%Y-%m-%dT%H:%M:%S}Z,{value}" for m in range(24 * 60)]
        (folder / f"{zone}_minutes.csv").write_text("\n".join(rows) + "\n")
    return folder


def cloud_job(name: str, regions: list[str]) -> JobSpec:
    return JobSpec.model_validate({
        "name": name, "work": {"duration": "10m", "instance_type": "g5.xlarge"},
        "within": "6h", "regions": regions, "urgent": True,
        "entrypoint": "carbonshift.examples.tiny_train:train"})


def cloud_config(tmp: Path, fc: Path, **compute: Any) -> TrainingConfig:
    return TrainingConfig.model_validate({
        "checkpoint_store": f"s3://{BUCKET}/ckpt",
        "checkpoint_every_s": 0.2,
        "forecast": ForecastConfig(providers=["replay"], traces_dir=str(fc),
                                   replay_as_of_now=False, cache_dir=str(tmp / "cache")),
        "monitor": MonitorRule(interval_s=0.2, grace_s=3600.0),
        "options": {"steps": str(STEPS)},
        "compute": {"kind": "cloud", "state_dir": str(tmp / "compute"),
                    "aws": {"ami_parameter": AL2023, "wait_delay_s": 0.05},
                    "remote": {"heartbeat_every_s": 0.1, "poll_every_s": 0.05,
                               "flow_poll_s": 0.1, "heartbeat_timeout_s": 30.0,
                               "start_grace_s": 60.0, "stop_wait_s": 20.0,
                               "stop_grace_s": 30.0},
                    **compute},
    })


def plan(spec: JobSpec, fc: Path, now: datetime) -> FeasiblePlan:
    series = read_traces(traces_in(fc))
    zones = {r: default_catalog().region(r).em_zone for r in spec.regions}
    (made,) = plan_jobs([spec], {r: series[z] for r, z in zones.items()}, now=now,
                        catalog=default_catalog())
    assert isinstance(made, FeasiblePlan), made
    return made


def instances(region: str = "us-east-1") -> list[tuple[str, str]]:
    ec2 = boto3.client("ec2", region_name=region)
    return [(i["InstanceId"], i["State"]["Name"])
            for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]


@pytest.fixture
def cloud(aws: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CARBONSHIFT_EMULATE_INSTANCES", "1")
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
    return aws


def test_a_job_trains_on_ec2_against_s3_and_the_instance_is_released(
        cloud: str, prefect_server: None, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    fc = traces(tmp_path / "fc", now, {"US-MIDA-PJM": 300.0})
    spec = cloud_job("cloud-train", ["aws:us-east-1"])
    state = train_model(spec, plan(spec, fc, now), None, cloud_config(tmp_path, fc),
                        return_state=True)
    assert state.type == StateType.COMPLETED and state.name == "Completed", state.message
    assert f"trained {STEPS} steps" in (state.message or "")
    assert [s for _, s in instances()] == ["terminated"]
    store, base = open_store(f"s3://{BUCKET}/ckpt")
    folder = "/".join(p for p in (base, "cloud-train") if p)
    runs = {k[len(folder) + 1:].split("/")[0] for k in store.list(folder)}
    assert len(runs) == 1  # one run folder, with its checkpoints and the VM's control files
    (run_id,) = runs
    latest = CheckpointManager(store, f"{folder}/{run_id}").latest()
    assert latest is not None and latest.step == STEPS


def test_capacity_on_the_first_choice_moves_the_run_to_the_next(
        cloud: str, prefect_server: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = datetime.now(UTC)
    fc = traces(tmp_path / "fc", now, {"US-MIDA-PJM": 300.0, "US-NW-BPAT": 50.0})
    spec = cloud_job("cloud-failover", ["aws:us-west-2", "aws:us-east-1"])
    made = plan(spec, fc, now)
    assert made.chosen.region == "aws:us-west-2"  # cleaner: chosen; us-east-1 is next
    session = boto3.Session(region_name="us-east-1")
    refused = fail(session, "RunInstances", "InsufficientInstanceCapacity",
                   "We currently do not have sufficient g5.xlarge capacity",
                   when=lambda request: "/us-west-2/" in str(request.headers["Authorization"]))
    monkeypatch.setattr(tasks.training, "cloud_access",
                        lambda config: CloudAccess(aws_session=session))
    state = train_model(spec, made, None, cloud_config(tmp_path, fc), return_state=True)
    assert state.type == StateType.COMPLETED and state.name == "Completed", state.message
    assert len(refused) >= 1
    assert instances("us-west-2") == []
    assert [s for _, s in instances("us-east-1")] == ["terminated"]


def test_the_hook_releases_in_every_planned_region(
        cloud: str, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    fc = traces(tmp_path / "fc", now, {"US-MIDA-PJM": 300.0, "US-NW-BPAT": 50.0})
    spec = cloud_job("cloud-hook", ["aws:us-west-2", "aws:us-east-1"])
    made = plan(spec, fc, now)
    cfg = cloud_config(tmp_path, fc)
    # A run that failed over to us-east-1, then its process died: the worker's hook knows only
    # the run's parameters.
    compute = cfg.compute.compute_for("aws:us-east-1")
    compute.provision(LaunchRequest("cloud-hook", "run-9", "aws:us-east-1", "g5.xlarge"))
    assert [s for _, s in instances("us-east-1")] == ["running"]
    run = SimpleNamespace(id="run-9", parameters={
        "plan": made.model_dump(mode="json"), "config": cfg.model_dump(mode="json")})
    release_on_hook(None, run, None)
    assert [s for _, s in instances("us-east-1")] == ["terminated"]
