"""The EC2 adapter against moto's EC2 and SSM, through boto3."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from moto.ec2.models.instances import StateReason

from carbonshift.compute import TAG_JOB, TAG_RUN_ID, CapacityError, ComputeError, LaunchRequest
from carbonshift.compute.ec2 import DLAMI_PARAMETER, Ec2Compute, client_token
from carbonshift.compute.port import TAG_HEARTBEAT
from tests.compute.conftest import AL2023, REGION
from tests.compute.faults import moto_ec2, params_of

pytestmark = pytest.mark.integration


def request(run_id: str = "run-1", **fields: Any) -> LaunchRequest:
    values: dict[str, Any] = {
        "job": "nightly",
        "run_id": run_id,
        "region": REGION,
        "instance_type": "g5.xlarge",
    }
    values.update(fields)
    return LaunchRequest(**values)


def described(ec2_api: Any, instance_id: str) -> dict[str, Any]:
    found = ec2_api.describe_instances(InstanceIds=[instance_id])["Reservations"]
    return dict(found[0]["Instances"][0])


def alive(ec2_api: Any, run_id: str) -> list[str]:
    found = ec2_api.describe_instances(
        Filters=[
            {"Name": f"tag:{TAG_RUN_ID}", "Values": [run_id]},
            {"Name": "instance-state-name", "Values": ["pending", "running", "stopped"]},
        ]
    )["Reservations"]
    return [i["InstanceId"] for r in found for i in r["Instances"]]


def test_provision_launches_a_tagged_running_instance(ec2: Ec2Compute, ec2_api: Any) -> None:
    script = "#!/bin/bash\necho train\n"
    instance = ec2.provision(request(boot_script=script))

    assert (instance.provider, instance.region, instance.run_id) == ("aws", REGION, "run-1")
    assert (instance.instance_type, instance.job, instance.spot) == ("g5.xlarge", "nightly", False)
    assert instance.handle.startswith("i-") and instance.launched_at_s is not None
    found = described(ec2_api, instance.handle)
    assert found["State"]["Name"] == "running"
    tags = {t["Key"]: t["Value"] for t in found["Tags"]}
    assert tags[TAG_RUN_ID] == "run-1" and tags[TAG_JOB] == "nightly"
    ami = boto3.client("ssm", region_name="us-east-1").get_parameter(Name=AL2023)
    assert found["ImageId"] == ami["Parameter"]["Value"]
    assert found["MetadataOptions"]["HttpTokens"] == "required"
    assert all(m["Ebs"]["DeleteOnTermination"] for m in found["BlockDeviceMappings"])
    data = ec2_api.describe_instance_attribute(InstanceId=instance.handle, Attribute="userData")
    assert base64.b64decode(data["UserData"]["Value"]).decode() == script
    behaviour = ec2_api.describe_instance_attribute(
        InstanceId=instance.handle, Attribute="instanceInitiatedShutdownBehavior"
    )
    assert behaviour["InstanceInitiatedShutdownBehavior"]["Value"] == "terminate"


def test_the_volumes_carry_the_tags_too(make_ec2: Callable[..., Ec2Compute], ec2_api: Any) -> None:
    instance = make_ec2(root_volume_gb=120).provision(request())

    volumes = ec2_api.describe_volumes(
        Filters=[{"Name": "attachment.instance-id", "Values": [instance.handle]}]
    )["Volumes"]
    assert volumes and all(v["Size"] == 120 for v in volumes)
    for volume in volumes:
        tags = {t["Key"]: t["Value"] for t in volume["Tags"]}
        assert tags[TAG_RUN_ID] == "run-1" and tags[TAG_JOB] == "nightly"


def test_the_heartbeat_uri_is_an_instance_tag_read_back_by_find_and_held(
    ec2: Ec2Compute, ec2_api: Any
) -> None:
    uri = "s3://ckpt/nightly/run-1/remote/run-1/heartbeat.json"
    launched = ec2.provision(request(heartbeat_uri=uri))
    ec2.provision(request("run-2"))

    tags = {t["Key"]: t["Value"] for t in described(ec2_api, launched.handle)["Tags"]}
    assert tags[TAG_HEARTBEAT] == uri and launched.heartbeat_uri == uri
    volumes = ec2_api.describe_volumes(
        Filters=[{"Name": "attachment.instance-id", "Values": [launched.handle]}]
    )["Volumes"]
    assert all(TAG_HEARTBEAT not in {t["Key"] for t in v["Tags"]} for v in volumes)
    found = ec2.find("run-1")
    assert found is not None and found.heartbeat_uri == uri
    assert {i.run_id: i.heartbeat_uri for i in ec2.held()} == {"run-1": uri, "run-2": None}


def test_a_heartbeat_uri_longer_than_a_tag_continues_in_more_tags(
    ec2: Ec2Compute, ec2_api: Any, caplog: pytest.LogCaptureFixture
) -> None:
    fits = "s3://b/" + "k" * (256 - len("s3://b/"))
    long = "s3://b/" + "/".join(f"folder-{i:03d}" for i in range(60)) + "/heartbeat.json"
    too_long = "s3://b/" + "k" * (4 * 256)
    caplog.set_level(logging.WARNING, logger="carbonshift.compute")
    kept = ec2.provision(request("run-256", heartbeat_uri=fits))
    split = ec2.provision(request("run-long", heartbeat_uri=long))
    cut = ec2.provision(request("run-huge", heartbeat_uri=too_long))

    assert kept.heartbeat_uri == fits  # exactly at the limit: one tag
    assert 256 < len(long) <= 1024 and split.heartbeat_uri == long
    assert ec2.find("run-long") is not None and ec2.find("run-long").heartbeat_uri == long  # type: ignore[union-attr]
    tags = {t["Key"]: t["Value"] for t in described(ec2_api, split.handle)["Tags"]}
    assert all(len(v) <= 256 for v in tags.values()) and f"{TAG_HEARTBEAT}:2" in tags
    assert cut.heartbeat_uri is None
    tags = {t["Key"] for t in described(ec2_api, cut.handle)["Tags"]}
    assert TAG_HEARTBEAT not in tags and TAG_RUN_ID in tags
    assert "more than 4 EC2 tags hold (1024)" in caplog.text


def test_spot_asks_for_a_one_time_instance_that_terminates(
    make_ec2: Callable[..., Ec2Compute], session: Any, ec2_api: Any
) -> None:
    sent = params_of(session, "RunInstances")
    instance = make_ec2().provision(request(spot=True))

    assert instance.spot
    assert described(ec2_api, instance.handle)["InstanceLifecycle"] == "spot"
    assert sent[0]["InstanceMarketOptions"] == {
        "MarketType": "spot",
        "SpotOptions": {
            "SpotInstanceType": "one-time",
            "InstanceInterruptionBehavior": "terminate",
        },
    }


def test_on_demand_sends_no_market_options(
    make_ec2: Callable[..., Ec2Compute], session: Any
) -> None:
    sent = params_of(session, "RunInstances")
    make_ec2().provision(request())
    assert "InstanceMarketOptions" not in sent[0]
    assert "UserData" not in sent[0]  # no boot script, no user data


def test_a_retried_provision_returns_the_same_instance(ec2: Ec2Compute, ec2_api: Any) -> None:
    first = ec2.provision(request())
    again = ec2.provision(request())
    assert again == first
    assert alive(ec2_api, "run-1") == [first.handle]


def test_a_retry_from_another_process_finds_the_instance(
    make_ec2: Callable[..., Ec2Compute], ec2_api: Any
) -> None:
    first = make_ec2().provision(request())
    assert make_ec2().provision(request()) == first  # a fresh adapter: nothing in memory
    assert make_ec2().find("run-1") == first
    assert alive(ec2_api, "run-1") == [first.handle]


def test_the_client_token_is_stable_per_launch_and_new_per_instance(
    make_ec2: Callable[..., Ec2Compute], session: Any
) -> None:
    sent = params_of(session, "RunInstances")
    ec2 = make_ec2()
    ec2.provision(request())
    ec2.release("run-1")
    ec2.provision(request())

    tokens = [p["ClientToken"] for p in sent]
    assert tokens == [client_token(request(), 0), client_token(request(), 1)]
    assert tokens[0] != tokens[1]


def test_client_tokens_fit_ec2_and_tell_launches_apart() -> None:
    base = request()
    variants = [
        base,
        request(run_id="run-2"),
        request(instance_type="g6.xlarge"),
        request(spot=True),
        request(region="aws:eu-west-1"),
    ]
    tokens = {client_token(r, 0) for r in variants} | {client_token(base, 1)}
    assert len(tokens) == len(variants) + 1
    for token in tokens:
        assert len(token) <= 64 and token.isascii()
    # the boot script and the job's name are not part of the launch's identity
    assert client_token(request(boot_script="x", job="other"), 0) == client_token(base, 0)
    assert client_token(request(region="us-east-1"), 0) == client_token(base, 0)


def test_an_old_token_answered_with_an_ended_instance_moves_on(
    make_ec2: Callable[..., Ec2Compute], session: Any, ec2_api: Any
) -> None:
    """AWS answers a token it knows with that launch's instance, even a terminated one (moto
    does not keep tokens, so the old answer is replayed through botocore's before-call hook)."""
    answers: list[dict[str, Any]] = []
    session.events.register(
        "after-call.ec2.RunInstances", lambda parsed, **_: answers.append(parsed)
    )
    ec2 = make_ec2()
    old = ec2.provision(request())
    ec2.release("run-1")
    stale = answers[0]
    stale["Instances"][0]["State"] = {"Code": 48, "Name": "terminated"}
    replayed: list[int] = []

    def replay(**_: Any) -> Any:
        if replayed:
            return None
        replayed.append(1)
        return type("Http", (), {"status_code": 200, "headers": {}})(), stale

    sent = params_of(session, "RunInstances")
    session.events.register("before-call.ec2.RunInstances", replay)
    new = make_ec2().provision(request())

    assert new.handle != old.handle
    assert described(ec2_api, new.handle)["State"]["Name"] == "running"
    assert len({p["ClientToken"] for p in sent}) == 2


def test_release_terminates_and_waits(ec2: Ec2Compute, ec2_api: Any) -> None:
    instance = ec2.provision(request())

    assert ec2.release("run-1") is True
    assert described(ec2_api, instance.handle)["State"]["Name"] == "terminated"
    assert ec2.find("run-1") is None
    assert ec2.release("run-1") is False
    assert ec2.interrupted("run-1")


def test_release_of_nothing_is_false(ec2: Ec2Compute) -> None:
    assert ec2.release("never-launched") is False
    assert ec2.find("never-launched") is None


def test_release_only_touches_its_run(ec2: Ec2Compute, ec2_api: Any) -> None:
    mine = ec2.provision(request("run-1"))
    other = ec2.provision(request("run-2"))
    ec2.release("run-1")
    assert described(ec2_api, other.handle)["State"]["Name"] == "running"
    assert described(ec2_api, mine.handle)["State"]["Name"] == "terminated"


def test_held_lists_live_carbonshift_instances_only(ec2: Ec2Compute, ec2_api: Any) -> None:
    a = ec2.provision(request("run-a"))
    b = ec2.provision(request("run-b", spot=True))
    ended = ec2.provision(request("run-c"))
    ec2.release("run-c")
    image = described(ec2_api, a.handle)["ImageId"]
    ec2_api.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.micro")

    held = ec2.held()
    assert sorted(i.handle for i in held) == sorted([a.handle, b.handle])
    assert ended.handle not in {i.handle for i in held}
    assert {i.run_id: i.spot for i in held} == {"run-a": False, "run-b": True}


def test_interrupted_when_the_instance_stops_or_ends(ec2: Ec2Compute, ec2_api: Any) -> None:
    a = ec2.provision(request("run-a"))
    b = ec2.provision(request("run-b"))
    assert not ec2.interrupted("run-a")

    ec2_api.stop_instances(InstanceIds=[a.handle])
    ec2_api.terminate_instances(InstanceIds=[b.handle])
    assert ec2.interrupted("run-a")
    assert ec2.interrupted("run-b")
    assert ec2.interrupted("never-launched")


def test_interrupted_when_aws_marks_the_spot_request(
    make_ec2: Callable[..., Ec2Compute], session: Any, ec2_api: Any
) -> None:
    """moto omits SpotInstanceRequestId from DescribeInstances and never marks a request: the
    test adds the id to the parsed answer (botocore's after-call hook) and marks the request
    in moto's backend, as AWS does two minutes before it reclaims the instance."""
    ec2 = make_ec2()
    instance = ec2.provision(request(spot=True))
    image = described(ec2_api, instance.handle)["ImageId"]
    spot = ec2_api.request_spot_instances(
        InstanceCount=1, LaunchSpecification={"ImageId": image, "InstanceType": "g5.xlarge"}
    )["SpotInstanceRequests"][0]["SpotInstanceRequestId"]

    def add_request_id(parsed: dict[str, Any], **_: Any) -> None:
        for reservation in parsed.get("Reservations", []):
            for found in reservation["Instances"]:
                if found["InstanceId"] == instance.handle:
                    found["SpotInstanceRequestId"] = spot

    session.events.register("after-call.ec2.DescribeInstances", add_request_id)
    watched = make_ec2()
    assert not watched.interrupted("run-1")
    moto_ec2().spot_instance_requests[spot]._status_code = "marked-for-termination"
    assert watched.interrupted("run-1")


def test_a_request_for_another_region_is_refused(ec2: Ec2Compute, ec2_api: Any) -> None:
    with pytest.raises(ComputeError, match="aws:eu-west-1.*one Ec2Compute per region"):
        ec2.provision(request(region="aws:eu-west-1"))
    assert alive(ec2_api, "run-1") == []


def test_an_oversized_boot_script_is_refused_before_launch(
    ec2: Ec2Compute, ec2_api: Any
) -> None:
    with pytest.raises(ComputeError, match="boot_script is 16385 bytes"):
        ec2.provision(request(boot_script="x" * 16385))
    assert alive(ec2_api, "run-1") == []


def test_a_boot_script_holding_the_secret_key_is_refused(
    make_ec2: Callable[..., Ec2Compute], ec2_api: Any, aws: str
) -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    session = boto3.Session(
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key=secret,
        region_name="us-east-1",
    )
    ec2 = make_ec2(session=session)
    with pytest.raises(ComputeError, match="boot_script holds the AWS secret") as refused:
        ec2.provision(request(boot_script=f"export AWS_SECRET_ACCESS_KEY={secret}\n"))
    assert secret not in str(refused.value)
    assert alive(ec2_api, "run-1") == []
    assert ec2.provision(request(boot_script="echo testing\n")).handle  # no false alarm


def test_the_default_dlami_parameter_is_unknown_to_the_emulator(
    make_ec2: Callable[..., Ec2Compute], ec2_api: Any
) -> None:
    ec2 = make_ec2(ami_parameter=DLAMI_PARAMETER)
    with pytest.raises(ComputeError) as refused:
        ec2.provision(request())
    message = str(refused.value)
    assert DLAMI_PARAMETER in message and "aws:us-east-1" in message and "`ami`" in message
    assert alive(ec2_api, "run-1") == []


def test_an_explicit_ami_wins_and_an_unknown_one_is_named(
    make_ec2: Callable[..., Ec2Compute], ec2_api: Any
) -> None:
    image = ec2_api.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance = make_ec2(ami=image, ami_parameter=DLAMI_PARAMETER).provision(request())
    assert described(ec2_api, instance.handle)["ImageId"] == image

    with pytest.raises(ComputeError, match=r"`ami` ami-0123456789abcdef0 .*aws:us-east-1|"
                       r"aws:us-east-1.*`ami` ami-0123456789abcdef0"):
        make_ec2(ami="ami-0123456789abcdef0").provision(request("run-2"))
    assert alive(ec2_api, "run-2") == []


def test_an_instance_that_ends_before_running_is_terminated_and_reported(
    make_ec2: Callable[..., Ec2Compute], session: Any, ec2_api: Any
) -> None:
    """Something ends the instance between RunInstances and running (here the test, through
    its own client, right after the launch answered)."""
    launched: list[str] = []

    def end_it(parsed: dict[str, Any], **_: Any) -> None:
        launched.append(parsed["Instances"][0]["InstanceId"])
        ec2_api.stop_instances(InstanceIds=launched)

    session.events.register("after-call.ec2.RunInstances", end_it)
    with pytest.raises(ComputeError, match="instance_running not reached") as failed:
        make_ec2().provision(request())
    assert not isinstance(failed.value, CapacityError)
    assert described(ec2_api, launched[0])["State"]["Name"] == "terminated"


def test_a_spot_instance_reclaimed_at_launch_is_a_capacity_error(
    make_ec2: Callable[..., Ec2Compute], session: Any, ec2_api: Any
) -> None:
    """AWS ends a spot instance it cannot hold with a Server.* state reason; moto's backend
    gets that reason set by the test (no API call sets it)."""
    launched: list[str] = []

    def reclaim(parsed: dict[str, Any], **_: Any) -> None:
        instance_id = parsed["Instances"][0]["InstanceId"]
        launched.append(instance_id)
        ec2_api.terminate_instances(InstanceIds=[instance_id])
        moto_ec2().get_instance(instance_id).state_reason = StateReason(
            "Server.SpotInstanceTermination: Spot instance termination",
            "Server.SpotInstanceTermination",
        )

    session.events.register("after-call.ec2.RunInstances", reclaim)
    with pytest.raises(CapacityError) as failed:
        make_ec2().provision(request(spot=True))
    assert (failed.value.region, failed.value.instance_type) == (REGION, "g5.xlarge")
    assert described(ec2_api, launched[0])["State"]["Name"] == "terminated"


def test_bad_settings_are_named() -> None:
    with pytest.raises(ValueError, match="root_volume_gb"):
        Ec2Compute(REGION, root_volume_gb=2)
    with pytest.raises(ValueError, match="gcp:us-east1"):
        Ec2Compute("gcp:us-east1")
