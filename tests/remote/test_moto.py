"""End to end against the emulator: EC2 on moto (AWS_ENDPOINT_URL) launches the instance with
the bootstrap as its user data, the emulation switch runs that script as the instance, a fake
IMDS posts the two-minute spot notice; the run checkpoints, and a second run resumes from it."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest

from carbonshift.checkpoint import LocalStore
from carbonshift.compute import TAG_JOB, TAG_RUN_ID, Compute, Instance, LaunchRequest
from carbonshift.remote import (
    BootstrapConfig,
    EmulatedInstances,
    RemoteTrainer,
    emulated_instances,
    render_bootstrap,
)
from carbonshift.training import Progress, TrainingContext
from tests.remote.fakes import fake_metadata, group_alive, remote_run

pytestmark = [pytest.mark.slow, pytest.mark.integration]
PREFIX = "tiny/r1"
LIVE = ["pending", "running"]


class MotoEc2:
    """The least EC2 compute a test needs (the project's adapter lives in carbonshift.compute):
    the boot script goes in as user data, instances are found by their run-id tag."""

    name = "aws"

    def __init__(self) -> None:
        self.ec2 = boto3.client("ec2", region_name="us-east-1")

    def _live(self, run_id: str | None = None) -> list[dict[str, object]]:
        filters = [{"Name": "instance-state-name", "Values": LIVE},
                   {"Name": "tag-key", "Values": [TAG_RUN_ID]}]
        if run_id is not None:
            filters.append({"Name": f"tag:{TAG_RUN_ID}", "Values": [run_id]})
        found = self.ec2.describe_instances(Filters=filters)["Reservations"]
        return [i for r in found for i in r["Instances"]]

    def _instance(self, raw: dict[str, object]) -> Instance:
        tags = {t["Key"]: t["Value"] for t in raw["Tags"]}  # type: ignore[attr-defined]
        return Instance(tags[TAG_RUN_ID], "aws", "aws:us-east-1", str(raw["InstanceType"]),
                        str(raw["InstanceId"]), tags.get(TAG_JOB, ""))

    def provision(self, request: LaunchRequest) -> Instance:
        known = self.find(request.run_id)
        if known is not None:
            return known
        raw = self.ec2.run_instances(
            ImageId="ami-03cf127a", InstanceType=request.instance_type, MinCount=1, MaxCount=1,
            UserData=request.boot_script or "",
            InstanceMarketOptions={"MarketType": "spot"} if request.spot else {},
            TagSpecifications=[{"ResourceType": "instance", "Tags": [
                {"Key": TAG_RUN_ID, "Value": request.run_id},
                {"Key": TAG_JOB, "Value": request.job}]}])["Instances"][0]
        return self._instance(raw)

    def release(self, run_id: str) -> bool:
        ids = [str(i["InstanceId"]) for i in self._live(run_id)]
        if ids:
            self.ec2.terminate_instances(InstanceIds=ids)
        return bool(ids)

    def find(self, run_id: str) -> Instance | None:
        live = self._live(run_id)
        return self._instance(live[0]) if live else None

    def interrupted(self, run_id: str) -> bool:
        return self.find(run_id) is None

    def held(self) -> list[Instance]:
        return [self._instance(i) for i in self._live()]


def test_spot_notice_on_moto_checkpoints_and_the_run_resumes(
        aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARBONSHIFT_EMULATE_INSTANCES", "1")
    store = LocalStore(tmp_path / "store")
    ec2 = boto3.client("ec2", region_name="us-east-1")
    with fake_metadata() as imds:
        monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url)  # the stand-in's IMDS
        compute: Compute = MotoEc2()
        if emulated_instances():
            compute = EmulatedInstances(compute, tmp_path / "emulated")
        assert isinstance(compute, EmulatedInstances)

        def launch(run_id: str, resume_from: str | None = None,
                   on_progress: Callable[[Progress], None] | None = None,
                   ) -> tuple[RemoteTrainer, TrainingContext, Instance, str]:
            remote, ctx = remote_run(store, PREFIX, run_id, 400, "aws", resume_from, on_progress)
            remote.publish()
            script = render_bootstrap(BootstrapConfig(), remote.spec_uri, "tiny job", run_id)
            instance = compute.provision(
                LaunchRequest("tiny job", run_id, "aws:us-east-1", "g5.xlarge", spot=True,
                              boot_script=script))
            return remote, ctx, instance, script

        def notice_at_step_150(p: Progress) -> None:
            if p.step >= 150:
                imds.action = {"action": "terminate", "time": "2026-01-01T00:02:00Z"}

        remote, ctx, instance, script = launch("r1", on_progress=notice_at_step_150)
        user_data = ec2.describe_instance_attribute(
            InstanceId=instance.handle, Attribute="userData")["UserData"]["Value"]
        assert base64.b64decode(user_data).decode() == script  # moto holds it; it runs nothing
        pid = json.loads((tmp_path / "emulated" / "r1.json").read_text())["pid"]
        outcome = remote(ctx)
        assert not outcome.completed and remote.interrupted() and not remote.lost()
        assert outcome.stopped_reason == "EC2 spot terminate at 2026-01-01T00:02:00Z"
        assert 150 <= outcome.step < 400 and outcome.checkpoint_uri is not None
        assert compute.release("r1") and compute.find("r1") is None and not group_alive(pid)
        states = [i["State"]["Name"] for r in ec2.describe_instances()["Reservations"]
                  for i in r["Instances"]]
        assert states == ["terminated"]

        imds.action = None
        resumed, ctx2, _, _ = launch("r2", resume_from=outcome.checkpoint_uri)
        done = resumed(ctx2)
        assert compute.release("r2")
    assert done.completed and (done.step, done.total_steps) == (400, 400)
    assert resumed.samples() and resumed.meter.read_j() > 0
    assert compute.held() == []
