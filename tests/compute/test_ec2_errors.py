"""How AWS's refusals reach the run: capacity moves to the next alternative, access fails fast,
and a launch that fails half-way leaves nothing running.

Refusals of permission and credentials are moto's own (its IAM checks, switched on per test);
capacity and quota errors, which moto cannot produce, are EC2's XML error answered through
botocore's before-send hook (tests/compute/faults.py) and parsed by botocore itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest

from carbonshift.clouds.aws_errors import CAPACITY_CODES
from carbonshift.compute import AccessDenied, CapacityError, ComputeError
from carbonshift.compute.ec2 import Ec2Compute
from tests.compute.conftest import REGION
from tests.compute.faults import fail, with_instance_ids
from tests.compute.test_ec2 import alive, described, request

pytestmark = pytest.mark.integration

LAUNCH = ["ec2:DescribeInstances", "ec2:DescribeImages", "ssm:GetParameter"]


# Written out, not read from CAPACITY_CODES: a code dropped there must fail here.
CAPACITY = [
    "InsufficientInstanceCapacity",
    "InsufficientCapacity",
    "InstanceLimitExceeded",
    "VcpuLimitExceeded",
    "MaxSpotInstanceCountExceeded",
    "SpotMaxPriceTooLow",
    "Unsupported",
]


def test_the_capacity_codes_are_those_written_here() -> None:
    assert sorted(CAPACITY_CODES) == sorted(CAPACITY)


@pytest.mark.parametrize("code", CAPACITY)
def test_capacity_and_quota_errors_are_capacity(
    code: str, make_ec2: Callable[..., Ec2Compute], session: Any, ec2_api: Any
) -> None:
    fail(session, "RunInstances", code, "We currently do not have sufficient capacity")
    with pytest.raises(CapacityError) as refused:
        make_ec2().provision(request())
    assert (refused.value.region, refused.value.instance_type) == (REGION, "g5.xlarge")
    assert code in str(refused.value)
    assert alive(ec2_api, "run-1") == []


def test_the_next_alternative_runs_after_a_capacity_error(
    make_ec2: Callable[..., Ec2Compute], session: Any
) -> None:
    """What the core's failover does with the error: the same run id, the next type."""
    fail(session, "RunInstances", "InsufficientInstanceCapacity", times=1)
    ec2 = make_ec2()
    with pytest.raises(CapacityError):
        ec2.provision(request(instance_type="p4d.24xlarge"))
    instance = ec2.provision(request(instance_type="g5.xlarge"))
    assert instance.instance_type == "g5.xlarge"
    assert [i.handle for i in ec2.held()] == [instance.handle]


@pytest.mark.parametrize("code", ["UnauthorizedOperation", "AuthFailure", "OptInRequired"])
def test_ec2_access_codes_fail_fast_naming_the_action(
    code: str, make_ec2: Callable[..., Ec2Compute], session: Any
) -> None:
    fail(session, "RunInstances", code, "You are not authorized to perform this operation.")
    with pytest.raises(AccessDenied) as refused:
        make_ec2().provision(request())
    assert refused.value.permission == "ec2:RunInstances"
    assert "ec2:CreateTags" in str(refused.value)


def test_an_unknown_refusal_is_a_compute_error_naming_the_call(
    make_ec2: Callable[..., Ec2Compute], session: Any
) -> None:
    fail(session, "RunInstances", "InvalidParameterValue", "Invalid value 'x' for InstanceType")
    with pytest.raises(ComputeError, match="ec2:RunInstances: InvalidParameterValue") as refused:
        make_ec2().provision(request())
    assert not isinstance(refused.value, CapacityError | AccessDenied)


def test_a_user_without_run_instances_is_refused_by_name(
    iam_user: Callable[[list[str]], Any], make_ec2: Callable[..., Ec2Compute], ec2_api: Any
) -> None:
    session = iam_user(LAUNCH)
    with pytest.raises(AccessDenied) as refused:
        make_ec2(session=session).provision(request())
    assert refused.value.permission == "ec2:RunInstances"
    assert "not authorized to perform: ec2:RunInstances" in str(refused.value)


def test_a_user_without_the_ami_parameter_is_refused_by_name(
    iam_user: Callable[[list[str]], Any], make_ec2: Callable[..., Ec2Compute]
) -> None:
    session = iam_user(["ec2:DescribeInstances", "ec2:DescribeImages", "ec2:RunInstances"])
    with pytest.raises(AccessDenied) as refused:
        make_ec2(session=session).provision(request())
    assert refused.value.permission == "ssm:GetParameter"


def test_a_user_without_terminate_cannot_release(
    iam_user: Callable[[list[str]], Any], make_ec2: Callable[..., Ec2Compute], ec2_api: Any
) -> None:
    session = iam_user([*LAUNCH, "ec2:RunInstances"])
    ec2 = make_ec2(session=session)
    instance = ec2.provision(request())
    with pytest.raises(AccessDenied) as refused:
        ec2.release("run-1")
    assert refused.value.permission == "ec2:TerminateInstances"
    assert ec2.find("run-1") == instance


def test_unknown_keys_are_refused_as_access(
    iam_user: Callable[[list[str]], Any], make_ec2: Callable[..., Ec2Compute]
) -> None:
    iam_user(LAUNCH)  # moto checks credentials from here on
    stranger = boto3.Session(
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        region_name="us-east-1",
    )
    with pytest.raises(AccessDenied, match="AuthFailure") as refused:
        make_ec2(session=stranger).provision(request())
    assert refused.value.permission == "ec2:DescribeInstances"


def test_no_credentials_at_all_fail_fast(
    make_ec2: Callable[..., Ec2Compute], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    for key in ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    ec2 = make_ec2(session=None)  # the default chain
    with pytest.raises(AccessDenied, match="no AWS credentials found") as refused:
        ec2.provision(request())
    assert refused.value.permission == "ec2:DescribeInstances"


def test_a_failure_after_the_launch_terminates_the_instance(
    make_ec2: Callable[..., Ec2Compute], session: Any, ec2_api: Any
) -> None:
    launched: list[str] = []
    session.events.register(
        "after-call.ec2.RunInstances",
        lambda parsed, **_: launched.append(parsed["Instances"][0]["InstanceId"]),
    )
    fail(session, "DescribeInstances", "UnauthorizedOperation", times=1, when=with_instance_ids)
    with pytest.raises(AccessDenied) as refused:
        make_ec2().provision(request())
    assert refused.value.permission == "ec2:DescribeInstances"
    assert described(ec2_api, launched[0])["State"]["Name"] == "terminated"
    assert alive(ec2_api, "run-1") == []


def test_a_failed_cleanup_is_named_on_the_error(
    make_ec2: Callable[..., Ec2Compute], session: Any, ec2_api: Any
) -> None:
    fail(session, "DescribeInstances", "UnauthorizedOperation", times=1, when=with_instance_ids)
    fail(session, "TerminateInstances", "UnauthorizedOperation")
    with pytest.raises(AccessDenied) as refused:
        make_ec2().provision(request())
    [left] = alive(ec2_api, "run-1")
    notes = " ".join(getattr(refused.value, "__notes__", []))
    assert left in notes and "may still run" in notes
