from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from carbonshift.compute.ec2 import Ec2Compute

# A public AMI parameter moto knows (it has none of the Deep Learning AMI's): the SSM path of
# the adapter is exercised with a real public parameter, its default with a missing one.
AL2023 = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.1-x86_64"
REGION = "aws:us-east-1"


@pytest.fixture
def session(aws: str) -> Any:
    """A boto3 session on the emulator (the `aws` fixture's fake credentials)."""
    return boto3.Session(region_name="us-east-1")


@pytest.fixture
def ec2_api(aws: str) -> Any:
    """The test's own EC2 client, for setting up and inspecting state; carbonshift's calls go
    through its own clients (the IAM recorder counts only those)."""
    return boto3.client("ec2", region_name="us-east-1")


@pytest.fixture
def make_ec2(session: Any) -> Callable[..., Ec2Compute]:
    def make(**options: Any) -> Ec2Compute:
        settings: dict[str, Any] = {
            "ami_parameter": AL2023,
            "session": session,
            "wait_delay_s": 0.01,
            "wait_max_attempts": 5,
        }
        settings.update(options)
        return Ec2Compute(settings.pop("region", REGION), **settings)

    return make


@pytest.fixture
def ec2(make_ec2: Callable[..., Ec2Compute]) -> Ec2Compute:
    return make_ec2()


def _reset_auth(server: str, count: str) -> None:
    # Not form-encoded (urllib's default): moto reads the raw body, which a form parse empties.
    request = urllib.request.Request(
        f"{server}/moto-api/reset-auth",
        data=count.encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    urllib.request.urlopen(request, timeout=10).close()


@pytest.fixture
def iam_user(aws: str) -> Iterator[Callable[[list[str]], Any]]:
    """`iam_user(actions)`: a boto3 session of a new IAM user allowed exactly `actions` (on
    every resource), with moto checking IAM for every request from then on, so refusals are
    moto's own errors. Authorisation is off again after the test."""

    def make(actions: list[str]) -> Any:
        _reset_auth(aws, "inf")  # the admin calls below are not a user's
        iam = boto3.client("iam", region_name="us-east-1")
        name = f"user{len(iam.list_users()['Users'])}"
        iam.create_user(UserName=name)
        key = iam.create_access_key(UserName=name)["AccessKey"]
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
        }
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
        _reset_auth(aws, "0")
        return boto3.Session(
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
            region_name="us-east-1",
        )

    try:
        yield make
    finally:
        _reset_auth(aws, "inf")
