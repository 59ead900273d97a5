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
from tasks.scheduling import job_runs
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


def runs_the_rescheduled_rest(job_name: str, found: tuple[str, int]) -> None:
    """The run the re-plan scheduled resumes from the checkpoint and completes the job."""
    (rest,) = job_runs("train-model/default", job_name, [StateType.SCHEDULED])
    params = rest.parameters
    assert params["resume_from"] == found[0] and params["config"]["replans"] == 1
    state = train_model(JobSpec.model_validate(params["job"]), params["plan"],
                        params["resume_from"], TrainingConfig.model_validate(params["config"]),
                        return_state=True)
    assert state.type == StateType.COMPLETED and state.name == "Completed", state.message
    done = latest(job_name)
    assert done is not None and done[1] == STEPS


def test_spot_interruption_checkpoints_and_the_rest_is_rescheduled(
        cloud: str, deployment: None, tmp_path: Path, fc: Path,
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
    assert state.name == "Rescheduled", (state.name, state.message)
    assert "interrupted" in (state.message or "") and "EC2 spot" in (state.message or "")
    found = latest(spec.name)
    assert found is not None and 0 < found[1] < STEPS
    runs_the_rescheduled_rest(spec.name, found)


def test_the_vm_killed_mid_checkpoint_upload_counts_as_lost_and_the_rest_is_rescheduled(
        cloud: str, deployment: None, tmp_path: Path, fc: Path) -> None:
    spec = job("chaos-vm-kill")
    emulated = tmp_path / "compute" / "emulated"

    def kill_the_vm() -> None:  # checkpoints every 0.05 s: the kill lands mid-upload or near
        (record,) = emulated.glob("*.json")
        os.killpg(json.loads(record.read_text())["pid"], signal.SIGKILL)

    when(lambda: latest(spec.name) is not None and bool(list(emulated.glob("*.json"))),
         kill_the_vm)
    state = train_model(spec, plan(spec, fc, datetime.now(UTC)), None,
                        config(tmp_path, fc, heartbeat_timeout_s=3.0), return_state=True)
    assert state.name == "Rescheduled", (state.name, state.message)
    assert "heartbeat lost" in (state.message or "")
    found = latest(spec.name)
    assert found is not None and 0 < found[1] < STEPS
    # The resumed run waits out the lock the killed VM held (its lease), then writes on.
    runs_the_rescheduled_rest(spec.name, found)


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


def cli_env() -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    return {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}


def run_ids(region: str = "us-east-1") -> list[str]:
    """The run ids of the live carbonshift instances in a region (their tags)."""
    ec2 = boto3.client("ec2", region_name=region)
    found = ec2.describe_instances(Filters=[
        {"Name": "tag-key", "Values": ["carbonshift:run-id"]},
        {"Name": "instance-state-name", "Values": ["pending", "running"]}])["Reservations"]
    return [t["Value"] for r in found for i in r["Instances"] for t in i["Tags"]
            if t["Key"] == "carbonshift:run-id"]


def reap_cli(settings_file: Path, stale_after: str) -> dict[str, object]:
    exe = Path(sys.executable).with_name("carbonshift")
    done = subprocess.run(
        [str(exe), "reap", "--region", "aws:us-east-1", "--stale-after", stale_after,
         "--config", str(settings_file), "--json"],
        capture_output=True, text=True, timeout=180, env=cli_env())
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def one_region_job(tmp: Path, fc: Path, name: str, steps: int) -> tuple[Path, Path, str]:
    """A job file with one job in us-east-1, its settings file, and the train request."""
    jobs = tmp / "jobs.yaml"
    spec = job(name).model_copy(update={"regions": ["aws:us-east-1"]})
    jobs.write_text(json.dumps({"jobs": [spec.model_dump(mode="json", by_alias=True,
                                                         exclude_none=True)]}))
    cfg = config(tmp, fc).model_dump(mode="json")
    settings_file = settings(tmp, fc, compute=cfg["compute"], options={"steps": str(steps)},
                             checkpoint_every_s=0.05)
    request = json.dumps({"jobs": str(jobs), "job": name, "compute": "cloud",
                          "store": f"s3://{BUCKET}/ckpt", "config": str(settings_file)})
    return jobs, settings_file, request


def test_the_flow_killed_mid_provision_leaves_an_instance_the_reaper_terminates(
        cloud: str, prefect_server: None, tmp_path: Path, fc: Path) -> None:
    _, settings_file, request = one_region_job(tmp_path, fc, "chaos-provision", 300)
    flow = subprocess.Popen([sys.executable, "-m", "tests.chaos.stalled_provision", request],
                            env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    when(lambda: bool(run_ids()), lambda: os.killpg(flow.pid, signal.SIGKILL)).join(120)
    out, _ = flow.communicate(timeout=60)
    assert flow.returncode == -signal.SIGKILL, out[-3000:]
    assert len(run_ids()) == 1  # launched, never released: nobody is left to release it
    time.sleep(1.5)  # older than --stale-after, by the instance's launch time
    reaped = reap_cli(settings_file, "1s")
    assert reaped["terminated"] == 1, reaped
    assert run_ids() == []
    # Nothing was trained, nothing is lost: the job runs again and completes.
    exe = Path(sys.executable).with_name("carbonshift")
    again = json.loads(request)
    done = subprocess.run(
        [str(exe), "train", "--jobs", again["jobs"], "--job", "chaos-provision", "--compute",
         "cloud", "--store", again["store"], "--config", again["config"]],
        capture_output=True, text=True, timeout=300, env=cli_env())
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_flow_killed_mid_training_the_reaper_ends_the_vm_at_a_checkpoint(
        cloud: str, prefect_server: None, tmp_path: Path, fc: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    _, settings_file, request = one_region_job(tmp_path, fc, "chaos-flow-kill", STEPS * 100)
    exe = Path(sys.executable).with_name("carbonshift")
    r = json.loads(request)
    flow = subprocess.Popen(
        [str(exe), "train", "--jobs", r["jobs"], "--job", "chaos-flow-kill", "--compute",
         "cloud", "--store", r["store"], "--config", r["config"]],
        env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    when(lambda: latest("chaos-flow-kill") is not None,
         lambda: os.killpg(flow.pid, signal.SIGKILL)).join(180)
    flow.communicate(timeout=60)
    (run_id,) = run_ids()
    # The VM trains on, heartbeating: its run looks alive, and the reaper leaves it alone.
    assert reap_cli(settings_file, "15m")["terminated"] == 0 and run_ids() == [run_id]
    # The server learns the run crashed (a worker's or Prefect's own crash detection does
    # that): now nobody owns the instance.
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run_id, Crashed(message="flow process killed"), force=True)
    reaped = reap_cli(settings_file, "15m")
    assert reaped["terminated"] == 1 and run_ids() == []
    found = latest("chaos-flow-kill")  # the agent checkpointed on the reaper's SIGTERM
    assert found is not None and found[1] > 0
    spec = job("chaos-flow-kill").model_copy(update={"regions": ["aws:us-east-1"]})
    state = train_model(spec, plan(spec, fc, datetime.now(UTC)), found[0],
                        config(tmp_path, fc, steps=found[1] + 200), return_state=True)
    assert state.type == StateType.COMPLETED and state.name == "Completed", state.message


@pytest.mark.parametrize("after_s", [0.0, 0.21])
def test_the_flow_killed_while_it_uploads_checkpoints_to_s3_loses_nothing(
        cloud: str, prefect_server: None, tmp_path: Path, fc: Path, after_s: float) -> None:
    # Local compute: the flow's own process trains and uploads every 50 ms to S3 (moto), so a
    # kill -9 at these offsets lands in or between multipart uploads.
    name = f"chaos-upload-{int(after_s * 100)}"
    jobs = tmp_path / "jobs.yaml"
    spec = job(name).model_copy(update={"regions": ["aws:us-east-1"]})
    jobs.write_text(json.dumps({"jobs": [spec.model_dump(mode="json", by_alias=True,
                                                         exclude_none=True)]}))
    settings_file = settings(tmp_path, fc, compute={"state_dir": str(tmp_path / "local")},
                             options={"steps": str(STEPS * 100)}, checkpoint_every_s=0.05)
    exe = Path(sys.executable).with_name("carbonshift")
    flow = subprocess.Popen(
        [str(exe), "train", "--jobs", str(jobs), "--job", name, "--store",
         f"s3://{BUCKET}/ckpt", "--config", str(settings_file)],
        env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)

    def kill() -> None:
        time.sleep(after_s)
        os.killpg(flow.pid, signal.SIGKILL)

    when(lambda: latest(name) is not None, kill).join(180)
    flow.communicate(timeout=60)
    found = latest(name)  # every part there and matching its manifest's sha256
    assert found is not None and found[1] > 0
    local = config(tmp_path, fc, steps=found[1] + 200).model_copy(
        update={"compute": config(tmp_path, fc).compute.model_copy(
            update={"kind": "local", "state_dir": str(tmp_path / "local2")})})
    state = train_model(spec, plan(spec, fc, datetime.now(UTC)), found[0], local,
                        return_state=True)
    assert state.type == StateType.COMPLETED and state.name == "Completed", state.message
    assert latest(name) is not None and latest(name)[1] == found[1] + 200  # type: ignore[index]
