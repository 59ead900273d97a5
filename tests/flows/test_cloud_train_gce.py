"""The training flow on GCE, end to end against the emulators: the real compute_v1 client
launches through a local fake of the Compute API, the emulation switch runs the startup script
as the VM, which trains against a GCS store on the GCS emulator; the flow follows it through the
store and deletes the instance. `carbonshift train --compute cloud` does the same."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.cloud import storage
from prefect.client.schemas.objects import StateType

from carbonshift.checkpoint import CheckpointManager, open_store
from carbonshift.config import TrainingConfig
from carbonshift.job import JobSpec
from flows.train import train_model
from tests.fakes.gce_api import FakeGce
from tests.flows.test_cloud_train import plan, traces
from tests.remote.fakes import fake_metadata

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BUCKET = "carbonshift-gce-test"
PROJECT = "carbonshift-test"
STEPS = 300


@pytest.fixture
def fake_gce() -> Iterator[FakeGce]:
    server = FakeGce()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def gce_cloud(gcs: str, fake_gce: FakeGce, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGce]:
    monkeypatch.setenv("CARBONSHIFT_EMULATE_INSTANCES", "1")
    storage.Client(project=PROJECT).create_bucket(BUCKET)
    with fake_metadata() as metadata:  # the stand-in VM asks it whether it was preempted
        monkeypatch.setenv("GCE_METADATA_HOST", metadata.url.removeprefix("http://"))
        yield fake_gce


def gce_job(name: str) -> JobSpec:
    return JobSpec.model_validate({
        "name": name, "work": {"duration": "10m", "instance_type": "a2-highgpu-1g"},
        "within": "6h", "regions": ["gcp:europe-west4"], "urgent": True,
        "entrypoint": "carbonshift.examples.tiny_train:train"})


def compute(tmp: Path, fake: FakeGce) -> dict[str, Any]:
    return {"kind": "cloud", "state_dir": str(tmp / "compute"),
            "gcp": {"project": PROJECT, "api_endpoint": fake.url, "anonymous": True,
                    "poll_interval_s": 0.05},
            "remote": {"heartbeat_every_s": 0.1, "poll_every_s": 0.05, "flow_poll_s": 0.1,
                       "heartbeat_timeout_s": 30.0, "start_grace_s": 60.0}}


def live(fake: FakeGce) -> list[tuple[str, str]]:
    return fake.names()


def test_a_job_trains_on_gce_against_gcs_and_the_instance_is_deleted(
        gce_cloud: FakeGce, prefect_server: None, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    fc = traces(tmp_path / "fc", now, {"NL": 300.0})
    spec = gce_job("gce-train")
    cfg = TrainingConfig.model_validate({
        "checkpoint_store": f"gs://{BUCKET}/ckpt", "checkpoint_every_s": 0.2,
        "forecast": {"providers": ["replay"], "traces_dir": str(fc), "replay_as_of_now": False,
                     "cache_dir": str(tmp_path / "cache")},
        "monitor": {"interval_s": 0.2, "grace_s": 3600.0},
        "options": {"steps": str(STEPS)}, "compute": compute(tmp_path, gce_cloud)})
    state = train_model(spec, plan(spec, fc, now), None, cfg, return_state=True)
    assert state.type == StateType.COMPLETED and state.name == "Completed", state.message
    (insert,) = gce_cloud.inserts()
    metadata = {i["key"]: i["value"] for i in insert.body["metadata"]["items"]}  # type: ignore[index]
    assert "carbonshift.remote.agent" in metadata["startup-script"]
    assert live(gce_cloud) == []  # deleted
    store, base = open_store(f"gs://{BUCKET}/ckpt")
    folder = "/".join(p for p in (base, "gce-train") if p)
    (run,) = {k[len(folder) + 1:].split("/")[0] for k in store.list(folder)}
    latest = CheckpointManager(store, f"{folder}/{run}").latest()
    assert latest is not None and latest.step == STEPS


def test_carbonshift_train_on_gce(gce_cloud: FakeGce, prefect_server: None,
                                  tmp_path: Path) -> None:
    from prefect.settings import PREFECT_API_URL

    fc = traces(tmp_path / "fc", datetime.now(UTC), {"NL": 300.0})
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(json.dumps({"jobs": [gce_job("gce-cli").model_dump(
        mode="json", by_alias=True, exclude_none=True)]}))
    settings = tmp_path / "training.yaml"
    settings.write_text(yaml.safe_dump({
        "checkpoint_every_s": 0.2, "options": {"steps": str(STEPS)},
        "forecast": {"providers": ["replay"], "traces_dir": str(fc), "replay_as_of_now": False,
                     "cache_dir": str(tmp_path / "cache")},
        "monitor": {"interval_s": 0.2, "grace_s": 3600.0},
        "compute": compute(tmp_path, gce_cloud)}))
    exe = Path(sys.executable).with_name("carbonshift")
    done = subprocess.run(
        [str(exe), "train", "--jobs", str(jobs), "--job", "gce-cli", "--compute", "cloud",
         "--region", "gcp:europe-west4", "--store", f"gs://{BUCKET}/cli", "--config",
         str(settings), "--json"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())})
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["state"] == "Completed"
    assert len(gce_cloud.inserts()) == 1 and live(gce_cloud) == []
