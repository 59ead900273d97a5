"""Pytest plugin: the shipped IAM policy grants every AWS call carbonshift makes.

Every client carbonshift makes passes through `carbonshift.clouds.aws.client_hooks`; this plugin
adds a hook there that registers botocore's own `before-call` event on the client, so each
operation a carbonshift client calls (before it is signed, so a call refused for want of
credentials counts too) is recorded. Clients the tests make themselves to set up or inspect the
emulators do not pass through that hook and are not counted. At the end of the session each
recorded operation is mapped to its IAM actions (`carbonshift.clouds.iam`) and the session
fails if deployments/aws-iam-policy.json does not allow one, or if the table lacks the
operation.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from carbonshift.clouds import aws, iam

POLICY_PATH = Path(__file__).resolve().parents[1] / "deployments" / "aws-iam-policy.json"
CALLED: set[tuple[str, str]] = set()  # (signing name, operation) over the whole session


def record(client: Any) -> None:
    service = client.meta.service_model.signing_name

    def before_call(model: Any, **_: Any) -> None:
        CALLED.add((service, model.name))

    client.meta.events.register("before-call", before_call)


def allowed_actions(policy: Mapping[str, Any]) -> list[str]:
    """The action patterns of the policy's Allow statements."""
    found: list[str] = []
    for statement in policy["Statement"]:
        if statement["Effect"] != "Allow":
            continue
        action = statement["Action"]
        found.extend([action] if isinstance(action, str) else action)
    return found


def missing(called: Iterable[tuple[str, str]], policy: Mapping[str, Any]) -> list[str]:
    """What the policy or the action table lacks for these operations (IAM matches actions
    case-insensitively, with * and ? wildcards)."""
    granted = [a.lower() for a in allowed_actions(policy)]
    problems = []
    for service, operation in sorted(set(called)):
        if (service, operation) not in iam.ACTIONS:
            problems.append(
                f"{service} {operation}: not in carbonshift/clouds/iam.py ACTIONS (add its IAM "
                "actions there and to the policy)"
            )
            continue
        for action in iam.ACTIONS[(service, operation)]:
            if not any(fnmatch.fnmatchcase(action.lower(), g) for g in granted):
                problems.append(f"{service} {operation}: {POLICY_PATH.name} lacks {action}")
    return problems


def pytest_configure(config: pytest.Config) -> None:
    aws.client_hooks.append(record)


def pytest_unconfigure(config: pytest.Config) -> None:
    if record in aws.client_hooks:
        aws.client_hooks.remove(record)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not CALLED:
        return
    problems = missing(CALLED, json.loads(POLICY_PATH.read_text(encoding="utf-8")))
    if problems:
        print("\nAWS calls the IAM policy does not cover:\n  " + "\n  ".join(problems))
        session.exitstatus = 1
