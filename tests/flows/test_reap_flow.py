"""The reaper flow under the test server: EC2 on moto (the real adapter) and local compute. Of
the instances carbonshift holds, exactly those whose run ended or whose heartbeat went stale are
terminated; a healthy run's stays, and so does what carbonshift did not launch."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.objects import StateType
from prefect.flows import load_flow_from_entrypoint
from prefect.states import Completed, Crashed, Running

from carbonshift.adhoc import ReapRequest
from carbonshift.checkpoint import LocalStore
from carbonshift.checkpoint.s3 import S3Store
from carbonshift.compute import LaunchRequest, LocalCompute
from carbonshift.compute.ec2 import Ec2Compute
from carbonshift.config import TrainingConfig
from carbonshift.remote.protocol import Heartbeat, ObjectStore, write
from flows.reap import ARTIFACT_KEY, reap_instances, reap_main

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
AL2023 = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.1-x86_64"
BUCKET = "reap-beats"


@flow(name="reap-test-subject")
def subject() -> None:
    """Stands in for train-model: the runs whose instances the reaper judges."""


def flow_run(state: Any) -> str:
    """A flow run on the test server, in `state`; its id, as instances carry it."""
    with get_client(sync_client=True) as client:
        run = client.create_flow_run(subject, state=Running())
        if state.type != StateType.RUNNING:
            client.set_flow_run_state(run.id, state, force=True)
    return str(run.id)


def beat(store: ObjectStore, key: str, age_s: float) -> str:
    """A heartbeat written `age_s` ago at `key`, by the store's clock (the reaper's measure;
    the VM's own `at_s` is not trusted); its URI. A folder's file is aged with utime; an
    object store's can only be fresh."""
    # The VM's clock says "just now" whatever the age: the reaper must not believe it.
    write(store, key, Heartbeat(attempt="a", seq=3, at_s=time.time()))
    if age_s:
        assert isinstance(store, LocalStore), "only a folder's heartbeat can be aged"
        path = Path(store.uri.removeprefix("file://")) / key
        os.utime(path, (time.time() - age_s, time.time() - age_s))
    return f"{store.uri}/{key}"


def artifact() -> str:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[ARTIFACT_KEY]))
        )
    assert found
    return str(sorted(found, key=lambda a: a.created)[-1].data)


def cloud(tmp_path: Path) -> TrainingConfig:
    return TrainingConfig.model_validate({
        "checkpoint_store": f"s3://{BUCKET}/ckpt",
        "compute": {"kind": "cloud", "state_dir": str(tmp_path / "state"),
                    "aws": {"ami_parameter": AL2023}}})


def ec2_states(ids: list[str]) -> dict[str, str]:
    api = boto3.client("ec2", region_name="us-east-1")
    found = api.describe_instances(InstanceIds=ids)["Reservations"]
    return {i["InstanceId"]: i["State"]["Name"] for r in found for i in r["Instances"]}


def test_ec2_instances_of_ended_and_silent_runs_are_terminated(
    prefect_server: None, aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Emulated instances: heartbeats in a folder of this machine are theirs to read.
    monkeypatch.setenv("CARBONSHIFT_EMULATE_INSTANCES", "1")
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
    s3 = S3Store(BUCKET, "ckpt")
    local = LocalStore(tmp_path / "store")
    ended, silent, healthy = flow_run(Crashed()), flow_run(Running()), flow_run(Running())
    launches = {  # run id -> heartbeat: the ended run's is fresh, its state decides
        ended: beat(local, f"{ended}/heartbeat.json", 10),
        silent: beat(local, f"{silent}/heartbeat.json", 3600),
        healthy: beat(s3, f"{healthy}/heartbeat.json", 0),  # S3's LastModified: just now
    }
    ec2 = Ec2Compute("aws:us-east-1", ami_parameter=AL2023, wait_delay_s=0.01)
    launched = {
        run: ec2.provision(LaunchRequest("job", run, "aws:us-east-1", "g5.xlarge",
                                         heartbeat_uri=uri)).handle
        for run, uri in launches.items()
    }
    api = boto3.client("ec2", region_name="us-east-1")
    image = api.describe_instances(InstanceIds=[launched[ended]])["Reservations"][0][
        "Instances"][0]["ImageId"]
    (stranger,) = [i["InstanceId"] for i in api.run_instances(
        ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.micro")["Instances"]]

    summary = reap_main(ReapRequest(regions=["aws:us-east-1"]), cloud(tmp_path))

    states = ec2_states([*launched.values(), stranger])
    assert states == {launched[ended]: "terminated", launched[silent]: "terminated",
                      launched[healthy]: "running", stranger: "running"}
    assert summary["terminated"] == 2 and summary["errors"] == {}
    reasons = {r["run_id"]: r["reason"] for r in summary["instances"]}
    assert reasons == {ended: f"run {ended} is Crashed", silent: "last heartbeat 60 min ago"}
    assert {r["handle"] for r in summary["instances"]} == {launched[ended], launched[silent]}
    assert all(r["region"] == "aws:us-east-1" and r["released"] for r in summary["instances"])
    text = artifact()
    assert launched[ended] in text and launched[silent] in text
    assert launched[healthy] not in text

    again = reap_main(ReapRequest(regions=["aws:us-east-1"]), cloud(tmp_path))
    assert again == {"terminated": 0, "instances": [], "errors": {}}  # idempotent
    assert "Nothing to terminate." in artifact()


def test_gce_instances_are_judged_by_the_heartbeat_in_their_metadata(
    prefect_server: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARBONSHIFT_EMULATE_INSTANCES", "1")  # folder heartbeats: this machine's
    from google.auth.credentials import AnonymousCredentials

    from carbonshift.compute.gce import GceCompute
    from tests.fakes.gce_api import FakeGce

    fake = FakeGce()
    fake.start()
    try:
        gce = GceCompute("carbonshift-test", "gcp:europe-west4", credentials=AnonymousCredentials(),
                         client_options={"api_endpoint": fake.url}, poll_interval_s=0.0)
        store = LocalStore(tmp_path / "store")
        ended, silent, healthy = flow_run(Completed()), flow_run(Running()), flow_run(Running())
        for run, age_s in ((ended, 5), (silent, 1000), (healthy, 5)):
            gce.provision(LaunchRequest("job", run, "gcp:europe-west4", "a2-highgpu-1g",
                                        heartbeat_uri=beat(store, f"{run}/hb.json", age_s)))
        config = TrainingConfig.model_validate({
            "checkpoint_store": "gs://reap-beats/ckpt",
            "compute": {"kind": "cloud", "gcp": {"project": "carbonshift-test",
                                                 "api_endpoint": fake.url, "anonymous": True}}})

        summary = reap_main(ReapRequest(regions=["gcp:europe-west4"], stale_after_s=600), config)

        assert [i.run_id for i in gce.held()] == [healthy]
        assert sorted(r["run_id"] for r in summary["instances"]) == sorted([ended, silent])
        assert summary["terminated"] == 2
    finally:
        fake.stop()


def test_a_region_that_cannot_be_swept_fails_the_run_but_not_the_others(
    prefect_server: None, aws: str, tmp_path: Path
) -> None:
    ended = flow_run(Completed())
    ec2 = Ec2Compute("aws:us-east-1", ami_parameter=AL2023, wait_delay_s=0.01)
    handle = ec2.provision(LaunchRequest("job", ended, "aws:us-east-1", "g5.xlarge")).handle

    state = reap_instances(["azure:westeurope", "aws:us-east-1"], 900, cloud(tmp_path),
                           return_state=True)

    assert state.type == StateType.FAILED
    assert "azure:westeurope" in (state.message or "")
    summary = state.result(raise_on_failure=False)
    assert summary["terminated"] == 1 and ec2_states([handle]) == {handle: "terminated"}
    assert "compute.kind 'cloud' launches in aws: or gcp: regions" in summary["errors"][
        "azure:westeurope"]
    assert "**azure:westeurope not swept:**" in artifact()


def test_local_compute_is_swept_once_whatever_the_regions(
    prefect_server: None, tmp_path: Path
) -> None:
    state_dir = tmp_path / "compute"
    compute = LocalCompute(state_dir)
    store = LocalStore(tmp_path / "store")
    ended, silent, quiet, lost = (flow_run(Completed()), flow_run(Running()),
                                  flow_run(Running()), str(uuid.uuid4()))
    stale = beat(store, "silent/heartbeat.json", 2000)
    for run, uri in ((ended, None), (silent, stale), (quiet, None), (lost, None)):
        compute.provision(LaunchRequest("job", run, "aws:eu-west-2", "g5.xlarge",
                                        heartbeat_uri=uri))
    config = TrainingConfig.model_validate({"compute": {"state_dir": str(state_dir)}})

    summary = reap_main(ReapRequest(regions=["aws:eu-west-2", "gcp:europe-west4"],
                                    stale_after_s=1800), config)

    # An active run without a heartbeat, and one the server does not know, are kept: nothing
    # says they are gone (their launch time is no evidence: a local run writes no heartbeat).
    assert sorted(i.run_id for i in compute.held()) == sorted([quiet, lost])
    assert sorted(r["run_id"] for r in summary["instances"]) == sorted([ended, silent])
    assert summary["terminated"] == 2


def test_bad_parameters_are_named(prefect_server: None, tmp_path: Path) -> None:
    with pytest.raises(Exception, match="stale_after_s"):
        reap_instances(["aws:us-east-1"], 0, return_state=False)
    with pytest.raises(Exception, match="regions"):
        reap_instances([], 900)


def test_the_deployment_in_prefect_yaml_runs_the_flow_every_15_minutes() -> None:
    found = yaml.safe_load((REPO / "prefect.yaml").read_text())
    (deployment,) = [d for d in found["deployments"]
                     if d["entrypoint"] == "flows/reap.py:reap_instances"]
    loaded = load_flow_from_entrypoint(deployment["entrypoint"], use_placeholder_flow=False)
    assert loaded.name == "reap-instances"
    assert deployment["enforce_parameter_schema"] is True
    loaded.validate_parameters(deployment["parameters"])  # raises on a bad parameter
    (schedule,) = deployment["schedules"]
    assert schedule["interval"] == 900
    assert deployment["work_pool"]["name"] == "carbonshift-process"



@pytest.mark.slow
def test_prefect_deploys_the_reaper_with_its_schedule_off(prefect_server: None) -> None:
    """`prefect deploy` of this repo's prefect.yaml, against the test server: the parameters
    pass the enforced schema, the schedule is there, paused until configured."""
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists
    from prefect.settings import PREFECT_API_URL

    with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
        client.create_work_pool(WorkPoolCreate(name="carbonshift-process", type="process"))
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    done = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--name",
         "reap-instances/every-15-minutes"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("reap-instances/every-15-minutes")
    assert deployment.enforce_parameter_schema
    assert deployment.parameters == {"regions": ["aws:us-east-1"], "stale_after_s": 900}
    (schedule,) = deployment.schedules
    assert schedule.schedule.interval.total_seconds() == 900
    assert schedule.active is False
    assert set(deployment.parameter_openapi_schema["required"]) == {"regions"}
