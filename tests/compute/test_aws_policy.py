"""The shipped IAM policy: valid, scoped, and granting every action carbonshift may call. The
session-wide check that it grants every call the suite made lives in tests/aws_policy.py."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from carbonshift.clouds import iam
from carbonshift.clouds.aws import client
from tests import aws_policy
from tests.aws_policy import POLICY_PATH, allowed_actions, missing


@pytest.fixture(scope="module")
def policy() -> dict[str, Any]:
    found: dict[str, Any] = json.loads(POLICY_PATH.read_text(encoding="utf-8"))
    return found


def statements_for(policy: dict[str, Any], action: str) -> list[dict[str, Any]]:
    found = []
    for statement in policy["Statement"]:
        actions = statement["Action"]
        if action in ([actions] if isinstance(actions, str) else actions):
            found.append(statement)
    return found


def test_the_policy_is_a_valid_identity_policy(policy: dict[str, Any]) -> None:
    assert policy["Version"] == "2012-10-17"
    sids = [s["Sid"] for s in policy["Statement"]]
    assert len(sids) == len(set(sids)) and all(sid.isalnum() for sid in sids)
    for statement in policy["Statement"]:
        assert set(statement) <= {"Sid", "Effect", "Action", "Resource", "Condition"}
        assert statement["Effect"] == "Allow" and statement["Resource"]
    # managed policies hold at most 6144 characters, whitespace aside
    assert len(json.dumps(policy, separators=(",", ":"))) <= 6144


def test_the_policy_grants_every_action_in_the_table(policy: dict[str, Any]) -> None:
    assert missing(iam.ACTIONS, policy) == []


def test_the_policy_grants_nothing_broad(policy: dict[str, Any]) -> None:
    for action in allowed_actions(policy):
        assert "*" not in action, action
    for statement in policy["Statement"]:
        if statement["Resource"] == "*":  # only calls that take no resource scope
            actions = statement["Action"]
            assert all(a.startswith("ec2:Describe") for a in actions), statement["Sid"]


def test_terminate_is_limited_to_tagged_instances(policy: dict[str, Any]) -> None:
    [statement] = statements_for(policy, "ec2:TerminateInstances")
    assert statement["Resource"] == "arn:aws:ec2:*:*:instance/*"
    assert statement["Condition"] == {"Null": {"aws:ResourceTag/carbonshift:run-id": "false"}}


def test_launches_must_carry_the_tags(policy: dict[str, Any]) -> None:
    for statement in statements_for(policy, "ec2:RunInstances"):
        resources = statement["Resource"]
        tagged = [r for r in resources if r.endswith((":instance/*", ":volume/*"))]
        if tagged:
            assert tagged == resources  # tag conditions only where the tags land
            required = statement["Condition"]["Null"]
            assert required == {
                "aws:RequestTag/carbonshift:run-id": "false",
                "aws:RequestTag/carbonshift:job": "false",
            }
    [tags] = statements_for(policy, "ec2:CreateTags")
    assert tags["Condition"] == {"StringEquals": {"ec2:CreateAction": "RunInstances"}}


def test_missing_names_what_the_policy_or_the_table_lacks() -> None:
    policy = {
        "Statement": [
            {"Effect": "Allow", "Action": ["ec2:Describe*", "EC2:runinstances"], "Resource": "*"},
            {"Effect": "Deny", "Action": "ec2:TerminateInstances", "Resource": "*"},
        ]
    }
    assert missing([("ec2", "DescribeInstances"), ("ec2", "DescribeImages")], policy) == []
    assert missing([("ec2", "RunInstances")], policy) == [
        "ec2 RunInstances: aws-iam-policy.json lacks ec2:CreateTags"
    ]
    assert missing([("ec2", "TerminateInstances")], policy) == [
        "ec2 TerminateInstances: aws-iam-policy.json lacks ec2:TerminateInstances"
    ]
    [unknown] = missing([("ec2", "RebootInstances")], policy)
    assert "RebootInstances: not in carbonshift/clouds/iam.py" in unknown


@pytest.mark.integration
@pytest.mark.usefixtures("aws")
def test_the_recorder_counts_carbonshift_clients_only() -> None:
    ours = client("ec2", "aws:us-east-1")
    ours.describe_instances()
    theirs = boto3.client("ec2", region_name="us-east-1")
    theirs.describe_vpcs()

    assert ("ec2", "DescribeInstances") in aws_policy.CALLED
    assert ("ec2", "DescribeVpcs") not in aws_policy.CALLED
