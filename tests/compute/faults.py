"""What the emulator cannot do, done through botocore's own event hooks on a real boto3.Session
(never a mock of the SDK).

`fail` answers an EC2 operation with an AWS-shaped error: botocore builds and signs the request,
then the `before-send` hook hands back the XML error EC2 would send, which botocore's own parser
and retry logic turn into the ClientError the code sees. moto cannot run out of capacity or quota.

`moto_ec2` is moto's in-process EC2 backend (the test server runs in this process), for state an
API call cannot set, such as a spot request AWS marked for termination.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from botocore.awsrequest import AWSResponse

ACCOUNT = "123456789012"  # moto's default account

_EC2_ERROR = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{code}</Code>'
    "<Message>{message}</Message></Error></Errors><RequestID>injected</RequestID></Response>"
)


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


def fail(
    session: Any,
    operation: str,
    code: str,
    message: str = "injected by the test",
    *,
    times: int | None = None,
    when: Callable[[Any], bool] = lambda request: True,
    status: int = 400,
) -> list[Any]:
    """Answer the EC2 `operation` with error `code` (`times` times; None: every time) for
    requests `when` accepts. Register before the clients are made (they copy the session's
    hooks). Returns the list of requests it answered."""
    answered: list[Any] = []

    def before_send(request: Any, **_: Any) -> AWSResponse | None:
        if (times is not None and len(answered) >= times) or not when(request):
            return None
        answered.append(request)
        body = _EC2_ERROR.format(code=code, message=message).encode()
        return AWSResponse(request.url, status, {}, _Body(body))

    session.events.register(f"before-send.ec2.{operation}", before_send)
    return answered


def with_instance_ids(request: Any) -> bool:
    """A DescribeInstances by id (the waiters'), not by tag filter."""
    body = request.body if isinstance(request.body, bytes) else str(request.body).encode()
    return b"InstanceId.1=" in body


def params_of(session: Any, operation: str) -> list[dict[str, Any]]:
    """Every parameter dict the session's clients send to the EC2 `operation`."""
    seen: list[dict[str, Any]] = []

    def provide(params: dict[str, Any], **_: Any) -> None:
        seen.append(dict(params))

    session.events.register(f"provide-client-params.ec2.{operation}", provide)
    return seen


def moto_ec2(region: str = "us-east-1") -> Any:
    from moto.ec2.models import ec2_backends

    return ec2_backends[ACCOUNT][region]
