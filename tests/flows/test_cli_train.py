"""`carbonshift train` as a user runs it: a job file, a region, a store; the training flow runs in
the CLI's process against a Prefect server, on this machine or on EC2 (moto, with the emulation
switch). Exit 0 when the training completed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
import yaml

from carbonshift.checkpoint import CheckpointManager, LocalStore
from tests.flows.test_cloud_train import AL2023, BUCKET, instances, traces

pytestmark = [pytest.mark.integration, pytest.mark.slow]
STEPS = 300


def job_file(folder: Path) -> Path:
    path = folder / "jobs.yaml"
    path.write_text(yaml.safe_dump({"jobs": [{
        "name": "cli-job", "work": {"duration": "10m", "instance_type": "g5.xlarge"},
        "within": "6h", "regions": ["aws:us-east-1", "aws:us-west-2"],
        "entrypoint": "carbonshift.examples.tiny_train:train"}]}))
    return path


def settings(folder: Path, fc: Path, **extra: object) -> Path:
    path = folder / "training.yaml"
    path.write_text(yaml.safe_dump({
        "checkpoint_every_s": 0.2,
        "options": {"steps": str(STEPS)},
        "forecast": {"providers": ["replay"], "traces_dir": str(fc), "replay_as_of_now": False,
                     "cache_dir": str(folder / "cache")},
        "monitor": {"interval_s": 0.2, "grace_s": 3600.0},
        **extra}))
    return path


def carbonshift(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    from prefect.settings import PREFECT_API_URL

    environ = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), **(env or {})}
    exe = Path(sys.executable).with_name("carbonshift")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=environ,
                          timeout=300)


def test_train_runs_one_job_on_this_machine(prefect_server: None, tmp_path: Path) -> None:
    fc = traces(tmp_path / "fc", datetime.now(UTC), {"US-MIDA-PJM": 300.0, "US-NW-BPAT": 50.0})
    done = carbonshift(
        "train", "--jobs", str(job_file(tmp_path)), "--job", "cli-job",
        "--region", "aws:us-east-1", "--store", str(tmp_path / "ckpt"),
        "--config", str(settings(tmp_path, fc, compute={"state_dir": str(tmp_path / "c")})),
        "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["state"] == "Completed" and f"trained {STEPS} steps" in result["message"]
    (run,) = (tmp_path / "ckpt" / "cli-job").iterdir()
    latest = CheckpointManager(LocalStore(tmp_path / "ckpt" / "cli-job"), run.name).latest()
    assert latest is not None and latest.step == STEPS
    assert not list((tmp_path / "c").glob("*.json"))  # released


def test_train_on_ec2_in_the_asked_region(
        aws: str, prefect_server: None, tmp_path: Path) -> None:
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
    fc = traces(tmp_path / "fc", datetime.now(UTC), {"US-MIDA-PJM": 300.0, "US-NW-BPAT": 50.0})
    compute = {"state_dir": str(tmp_path / "c"),
               "aws": {"ami_parameter": AL2023, "wait_delay_s": 0.05},
               "remote": {"heartbeat_every_s": 0.1, "poll_every_s": 0.05, "flow_poll_s": 0.1}}
    done = carbonshift(
        "train", "--jobs", str(job_file(tmp_path)), "--job", "cli-job", "--compute", "cloud",
        "--region", "aws:us-east-1", "--instance-type", "g5.xlarge",
        "--store", f"s3://{BUCKET}/cli", "--config", str(settings(tmp_path, fc, compute=compute)),
        env={"CARBONSHIFT_EMULATE_INSTANCES": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "cli-job: Completed" in done.stdout
    # us-west-2 is cleaner, but --region kept the run in us-east-1.
    assert [s for _, s in instances("us-east-1")] == ["terminated"]
    assert instances("us-west-2") == []


@pytest.mark.parametrize(("args", "says"), [
    (["--region", "aws:mars-1"], "aws:mars-1"),
    (["--config", "/nonexistent/training.yaml"], "--config /nonexistent/training.yaml"),
    (["--compute", "cloud", "--store", "/tmp/folder"], "cannot reach a folder"),
])
def test_bad_input_is_one_line_before_prefect_starts(
        tmp_path: Path, args: list[str], says: str) -> None:
    exe = Path(sys.executable).with_name("carbonshift")
    env = {k: v for k, v in os.environ.items() if k != "CARBONSHIFT_EMULATE_INSTANCES"}
    done = subprocess.run([str(exe), "train", "--jobs", str(job_file(tmp_path)),
                           "--job", "cli-job", *args], capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.parametrize(("args", "says"), [
    (["--region", "aws:eu-west-1"], "--region aws:eu-west-1: job 'cli-job' allows only"),
    (["--compute", "cloud", "--store", "s3://bkt/x", "--region", "aws:us-east-1"],
     None),  # a valid request: checked here only for the error-free path (see below)
])
def test_region_flags_narrow_the_job_never_widen_it(
        tmp_path: Path, args: list[str], says: str | None) -> None:
    from carbonshift.adhoc import TrainRequest, adhoc_job, training_config
    from carbonshift.catalog import default_catalog

    flags = dict(zip(args[::2], args[1::2], strict=True))
    request = TrainRequest(jobs=str(job_file(tmp_path)), job="cli-job",
                           region=flags.get("--region"), store=flags.get("--store"),
                           compute=flags.get("--compute", "local"))  # type: ignore[arg-type]
    if says is None:
        assert adhoc_job(request, default_catalog()).regions == ["aws:us-east-1"]
        assert training_config(request).compute.kind == "cloud"
        return
    with pytest.raises(ValueError, match=says):
        adhoc_job(request, default_catalog())


@pytest.mark.parametrize(("env", "args", "says"), [
    ({"CARBONSHIFT_EMULATE_INSTANCES": "true"}, ["--compute", "cloud", "--store", "s3://bkt/x"],
     "CARBONSHIFT_EMULATE_INSTANCES='true'"),
    ({}, ["--compute", "cloud", "--store", "s3://bkt/x", "--config", "OPTIONS"],
     "options.api_token: looks like a credential"),
])
def test_settings_errors_come_before_prefect_starts(
        tmp_path: Path, env: dict[str, str], args: list[str], says: str) -> None:
    secret = tmp_path / "secret.yaml"
    secret.write_text(yaml.safe_dump({"options": {"api_token": "hunter2secret"}}))
    args = [str(secret) if a == "OPTIONS" else a for a in args]
    exe = Path(sys.executable).with_name("carbonshift")
    base = {k: v for k, v in os.environ.items() if k != "CARBONSHIFT_EMULATE_INSTANCES"}
    done = subprocess.run([str(exe), "train", "--jobs", str(job_file(tmp_path)), "--job",
                           "cli-job", *args], capture_output=True, text=True, timeout=60,
                          env={**base, "PREFECT_API_URL": "http://127.0.0.1:9/api", **env})
    assert done.returncode == 2, done.stderr[-2000:]
    assert says in done.stderr and "hunter2secret" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
