"""`python -m tests.chaos.stalled_provision REQUEST_JSON`: `carbonshift train`'s flow process, as
flows.cli runs it, on an EC2 whose waiter never sees the instance running (botocore's before-send
hook holds the waiter's DescribeInstances): the process stays mid-provision until the test kills
it with -9. Only the wait is slowed; every call is the real SDK against moto."""

from __future__ import annotations

import sys
import threading
from typing import Any

import boto3

import tasks.training
from carbonshift.runs import CloudAccess
from flows import cli
from tests.compute.faults import with_instance_ids


def stalled_session() -> Any:
    session = boto3.Session(region_name="us-east-1")
    never = threading.Event()

    def hold(request: Any, **_: Any) -> None:
        if with_instance_ids(request):  # the waiter's describe, after RunInstances
            never.wait()

    session.events.register("before-send.ec2.DescribeInstances", hold)
    return session


if __name__ == "__main__":
    session = stalled_session()
    tasks.training.cloud_access = lambda config: CloudAccess(aws_session=session)  # type: ignore[assignment]
    sys.exit(cli.main(["train", sys.argv[1]]))
