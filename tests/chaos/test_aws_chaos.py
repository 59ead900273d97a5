"""Chaos on EC2 (moto) with the emulation switch: each case breaks a run the way production does
and checks the two things that matter afterwards: no carbonshift instance left running, and the
job either completed or left a checkpoint that loads and finishes the job when resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from prefect.client.schemas.objects import StateType

import tasks.training
from carbonshift.checkpoint import CheckpointManager, open_store
from carbonshift.config import TrainingConfig
from carbonshift.job import JobSpec
from carbonshift.runs import CloudAccess
from flows.train import train_model
from tests.compute.faults import fail
from tests.flows.test_cli_train import settings
from tests.flows.test_cloud_train import BUCKET, cloud_config, plan, traces
from tests.remote.fakes import fake_metadata

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.slow]
ZONES = {"US-NW-BPAT": 50.0, "GB": 100.0, "US-MIDA-PJM": 300.0}
REGIONS = ["aws:us-west-2", "aws:eu-west-2", "aws:us-east-1"]
STEPS = 1000


def live_instances() -> list[str]:
    """Every carbonshift instance not terminated, in the job's regions."""
    found = []
    for region in REGIONS:
        ec2 = boto3.client("ec2", region_name=region.split(":")[1])
        for r in ec2.describe_instances(Filters=[
                {"Name": "tag-key", "Values": ["carbonshift:run-id"]}])["Reservations"]:
            found += [i["InstanceId"] for i in r["Instances"]
                      if i["State"]["Name"] not in ("terminated", "shutting-down")]
    return found


def job(name: str, **fields: object) -> JobSpec:
    return JobSpec.model_validate({
        "name": name, "work": {"duration": "10m", "instance_type": "g5.xlarge"},
        "within": "6h", "regions": REGIONS, "urgent": True,
        "entrypoint": "carbonshift.examples.tiny_train:train", **fields})


def config(tmp: Path, fc: Path, steps: int = STEPS, **remote: float) -> TrainingConfig:
    cfg = cloud_config(tmp, fc)
    timings = cfg.compute.remote.model_copy(update=remote)
    return cfg.model_copy(update={
        "options": {"steps": str(steps)}, "checkpoint_every_s": 0.05,
        "compute": cfg.compute.model_copy(update={"remote": timings})})


def latest(job_name: str) -> tuple[str, int] | None:
    """The newest valid checkpoint of any run of the job: (uri, step)."""
    store, base = open_store(f"s3://{BUCKET}/ckpt")
    folder = "/".join(p for p in (base, job_name) if p)
    best = None
    for run in {k[len(folder) + 1:].split("/")[0] for k in store.list(folder)}:
        found = CheckpointManager(store, f"{folder}/{run}").latest()
        if found is not None and (best is None or found.step > best[1]):
            best = (found.uri, found.step)
    return best


def when(condition: Callable[[], bool], action: Callable[[], None], timeout_s: float = 120.0,
         ) -> threading.Thread:
    """Run `action` once `condition` holds (polled), on a thread: the break, timed by progress."""
    def watch() -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                action()
                return
            time.sleep(0.05)
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def finishes_from(spec: JobSpec, uri: str, tmp: Path, fc: Path) -> None:
    """Resuming from `uri` completes the job."""
    state = train_model(spec, plan(spec, fc, datetime.now(UTC)), uri, config(tmp, fc),
                        return_state=True)
    assert state.type == StateType.COMPLETED and state.name == "Completed", state.message
    assert latest(spec.name) is not None and latest(spec.name)[1] == STEPS  # type: ignore[index]


@pytest.fixture
def cloud(aws: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("CARBONSHIFT_EMULATE_INSTANCES", "1")
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
    yield aws
    assert live_instances() == []  # every case: nothing left running


@pytest.fixture
def fc(tmp_path: Path) -> Path:
    return traces(tmp_path / "fc", datetime.now(UTC), ZONES)


def test_capacity_errors_on_the_first_two_candidates(
        cloud: str, prefect_server: None, tmp_path: Path, fc: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    spec = job("chaos-capacity")
    made = plan(spec, fc, datetime.now(UTC))
    ranked = list(dict.fromkeys([made.chosen.region, *(a.region for a in made.alternatives)]))
    assert ranked == REGIONS  # cleanest first; every option of the first two is refused
    session = boto3.Session(region_name="us-east-1")
    refused = fail(session, "RunInstances", "InsufficientInstanceCapacity", "no g5 capacity",
                   when=lambda r: any(f"/{name}/" in str(r.headers["Authorization"])
                                      for name in ("us-west-2", "eu-west-2")))
    monkeypatch.setattr(tasks.training, "cloud_access",
                        lambda config: CloudAccess(aws_session=session))
    state = train_model(spec, made, None, config(tmp_path, fc, steps=300), return_state=True)
    assert state.type == StateType.COMPLETED and state.name == "Completed", state.message
    assert len(refused) >= 2


def test_spot_interruption_checkpoints_and_the_job_resumes(
        cloud: str, prefect_server: None, tmp_path: Path, fc: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    spec = job("chaos-spot", interruptible=True)
    with fake_metadata() as imds:
        monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url)

        def notice() -> None:
            imds.action = {"action": "terminate", "time": "2026-12-04T06:00:00Z"}

        when(lambda: latest(spec.name) is not None, notice)
        state = train_model(spec, plan(spec, fc, datetime.now(UTC)), None,
                            config(tmp_path, fc), return_state=True)
        imds.action = None
        assert state.name in ("Rescheduled", "Stopped"), (state.name, state.message)
        assert "interrupted" in (state.message or "")
        found = latest(spec.name)
        assert found is not None and 0 < found[1] < STEPS
        finishes_from(spec, found[0], tmp_path, fc)


def test_the_vm_killed_mid_checkpoint_upload_counts_as_lost_and_the_job_resumes(
        cloud: str, prefect_server: None, tmp_path: Path, fc: Path) -> None:
    spec = job("chaos-vm-kill")
    emulated = tmp_path / "compute" / "emulated"

    def kill_the_vm() -> None:  # checkpoints every 0.05 s: the kill lands mid-upload or near
        (record,) = emulated.glob("*.json")
        os.killpg(json.loads(record.read_text())["pid"], signal.SIGKILL)

    when(lambda: latest(spec.name) is not None and bool(list(emulated.glob("*.json"))),
         kill_the_vm)
    state = train_model(spec, plan(spec, fc, datetime.now(UTC)), None,
                        config(tmp_path, fc, heartbeat_timeout_s=3.0), return_state=True)
    assert state.name in ("Rescheduled", "Stopped"), (state.name, state.message)
    assert "heartbeat lost" in (state.message or "")
    found = latest(spec.name)
    assert found is not None and 0 < found[1] < STEPS
    finishes_from(spec, found[0], tmp_path, fc)


def test_ctrl_c_on_carbonshift_train_stops_at_a_checkpoint_and_releases(
        cloud: str, prefect_server: None, tmp_path: Path, fc: Path) -> None:
    from prefect.settings import PREFECT_API_URL

    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(json.dumps({"jobs": [job("chaos-cancel").model_dump(
        mode="json", by_alias=True, exclude_none=True)]}))
    cfg = config(tmp_path, fc).model_dump(mode="json")
    settings_file = settings(tmp_path, fc, compute=cfg["compute"],
                             options={"steps": str(STEPS * 50)}, checkpoint_every_s=0.05)
    exe = Path(sys.executable).with_name("carbonshift")
    cli = subprocess.Popen(
        [str(exe), "train", "--jobs", str(jobs), "--job", "chaos-cancel", "--compute", "cloud",
         "--store", f"s3://{BUCKET}/ckpt", "--config", str(settings_file)],
        env={**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    when(lambda: latest("chaos-cancel") is not None,
         lambda: os.killpg(cli.pid, signal.SIGINT)).join(timeout=180)
    out, _ = cli.communicate(timeout=180)
    assert cli.returncode != 0, out[-3000:]
    found = latest("chaos-cancel")
    assert found is not None and found[1] > 0
    # The VM stopped at a checkpoint when asked: the newest one is past the one seen first.
    assert live_instances() == [], out[-3000:]
