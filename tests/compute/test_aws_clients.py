"""carbonshift/clouds/aws.py: region names, the one client factory, error classification."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, NoCredentialsError, WaiterError

from carbonshift.clouds import aws
from carbonshift.clouds.aws import RegionError, region_key, region_name


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("aws:us-east-1", "us-east-1"),
        ("eu-north-1", "eu-north-1"),
        ("aws:us-gov-west-1", "us-gov-west-1"),
    ],
)
def test_region_names(key: str, name: str) -> None:
    assert region_name(key) == name
    assert region_key(key) == f"aws:{name}"


@pytest.mark.parametrize(
    "key", ["gcp:us-east1", "aws:", "", "aws:US-EAST-1", "aws:us-east-1 ", "us-east1"]
)
def test_bad_region_names_are_named(key: str) -> None:
    with pytest.raises(RegionError, match="aws:"):
        region_name(key)


def test_every_client_passes_the_hooks_and_the_injected_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[Any] = []
    monkeypatch.setattr(aws, "client_hooks", [*aws.client_hooks, seen.append])
    session = boto3.Session(
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="x" * 40
    )
    made = aws.client("ssm", "aws:eu-west-2", session)
    assert seen == [made]
    assert made.meta.region_name == "eu-west-2"
    assert made._request_signer._credentials.access_key == "AKIAIOSFODNN7EXAMPLE"


def _error(code: str, status: int, message: str = "m") -> ClientError:
    response = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "RunInstances")


def test_access_errors_by_code_or_status() -> None:
    assert aws.is_access_error(_error("UnauthorizedOperation", 403))
    assert aws.is_access_error(_error("ExpiredToken", 400))
    assert aws.is_access_error(_error("403", 403))  # a protocol that lost the code
    assert aws.is_access_error(NoCredentialsError())
    assert not aws.is_access_error(_error("InsufficientInstanceCapacity", 500))
    assert not aws.is_access_error(WaiterError("w", "gave up", {}))
    assert not aws.is_access_error(ValueError("x"))


def test_described_errors_leave_the_encoded_blob_out() -> None:
    message = (
        "You are not authorized to perform this operation. Encoded authorization failure "
        "message: " + "A" * 2000
    )
    text = aws.describe(_error("UnauthorizedOperation", 403, message))
    assert text == "UnauthorizedOperation: You are not authorized to perform this operation"
    assert aws.describe(NoCredentialsError()) == "NoCredentialsError: Unable to locate credentials"


def test_secrets_in_text() -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    session = boto3.Session(
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key=secret,
        aws_session_token="T" * 100,
    )
    assert aws.secret_in(f"x={secret}", session)
    assert aws.secret_in("token " + "T" * 100, session)
    assert not aws.secret_in("AKIAIOSFODNN7EXAMPLE is only the key id", session)
    short = boto3.Session(aws_access_key_id="a", aws_secret_access_key="testing")
    assert not aws.secret_in("testing testing", short)
