"""The one place carbonshift makes AWS clients.

Credentials come from the injected `boto3.Session` (the tasks layer builds one from a Prefect
`AwsCredentials` block) or from the SDK's default chain (environment, ~/.aws, an instance role);
never from parameters. `AWS_ENDPOINT_URL` reaches the client through botocore, so emulators need
nothing here. Every client passes through `client_hooks`: the test suite records the operations
carbonshift calls there and checks them against the shipped IAM policy.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import boto3  # type: ignore[import-untyped]
from botocore import exceptions as _sdk  # type: ignore[import-untyped]

ClientError = _sdk.ClientError
NoCredentialsError = _sdk.NoCredentialsError
PartialCredentialsError = _sdk.PartialCredentialsError
WaiterError = _sdk.WaiterError
BotoCoreError = _sdk.BotoCoreError

# What the SDK raises: a refused call (ClientError) or a failure on this side (BotoCoreError:
# no credentials, no connection, a waiter that gave up).
SDK_ERRORS: tuple[type[Exception], ...] = (ClientError, BotoCoreError)

ClientHook = Callable[[Any], None]
client_hooks: list[ClientHook] = []

_REGION = re.compile(r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d")

# Codes AWS answers when credentials are missing, invalid, expired, or lack a permission:
# retrying elsewhere will not help.
ACCESS_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "AuthFailure",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
        "OptInRequired",
    }
)


class RegionError(ValueError):
    pass


def region_name(key: str) -> str:
    """`aws:us-east-1` (the job-file form) or a bare `us-east-1` -> `us-east-1`."""
    provider, _, name = key.rpartition(":")
    if provider not in ("", "aws"):
        raise RegionError(f"region {key!r} is not an AWS region: write aws:<region>")
    if not _REGION.fullmatch(name):
        raise RegionError(f"region {key!r}: expected aws:<region> such as aws:us-east-1")
    return name


def region_key(key: str) -> str:
    return f"aws:{region_name(key)}"


def client(service: str, region: str, session: Any = None) -> Any:
    """A client for `service` in `region` from `session` (a boto3.Session), else the default
    chain. Clients are thread-safe; sessions are not, so each call may make its own."""
    made = (session or boto3.Session()).client(service, region_name=region_name(region))
    for hook in client_hooks:
        hook(made)
    return made


def secret_in(text: str, session: Any = None) -> bool:
    """Whether `text` holds the secret key or session token this session signs with (user data
    is readable by anyone on the instance and by ec2:DescribeInstanceAttribute)."""
    found = (session or boto3.Session()).get_credentials()
    if found is None:
        return False
    frozen = found.get_frozen_credentials()
    # Real secrets are 40+ characters; a short placeholder would match ordinary words.
    return any(s and len(s) >= 16 and s in text for s in (frozen.secret_key, frozen.token))


def error_code(error: BaseException) -> str:
    """The AWS error code of a ClientError ('' for anything else)."""
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return ""


def is_access_error(error: BaseException) -> bool:
    """Missing or refused credentials. Some protocols lose the code of a refusal (moto's JSON
    services answer 403 with the code in the body), so the HTTP status counts too."""
    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        return True
    if not isinstance(error, ClientError):
        return False
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return error_code(error) in ACCESS_CODES or status in (401, 403)


def describe(error: BaseException) -> str:
    """A short message for an SDK error, without request ids or encoded blobs."""
    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        message = str(info.get("Message", ""))
        cut = message.find("Encoded authorization failure message")
        if cut >= 0:
            # The encoded part stays on the chained SDK error, for sts:DecodeAuthorizationMessage.
            message = message[:cut].rstrip(" .")
        return f"{info.get('Code', 'error')}: {message[:300]}"
    return f"{type(error).__name__}: {error}"
