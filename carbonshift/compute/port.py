"""The compute port: provision an instance for a run, find it by the run's id, release it.

Hooks that release compute run in the worker's process, not the flow's, so instances are
found by run id in durable state (tags, labels, a state folder), never by memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# Tags (EC2) and labels (GCE) that mark what carbonshift launched; `reap` looks for them.
TAG_JOB = "carbonshift:job"
TAG_RUN_ID = "carbonshift:run-id"
# Where the run's VM writes its heartbeat: the reaper reads it without knowing the run's store.
TAG_HEARTBEAT = "carbonshift:heartbeat"


@dataclass(frozen=True)
class LaunchRequest:
    """One instance for one run. `region` is written as in job files (`aws:us-east-1`);
    `boot_script` is the user data / startup script of a remote run (None: nothing to run);
    `heartbeat_uri` the object its VM rewrites while alive (None: it writes none), recorded
    with the instance for the reaper."""

    job: str
    run_id: str
    region: str
    instance_type: str
    spot: bool = False
    boot_script: str | None = None
    heartbeat_uri: str | None = None


@dataclass(frozen=True)
class Instance:
    run_id: str
    provider: str
    region: str
    instance_type: str
    handle: str
    job: str = ""
    spot: bool = False
    launched_at_s: float | None = None
    heartbeat_uri: str | None = None  # as launched; None: not recorded (or none written)


class ComputeError(Exception):
    """A provider refused or failed an instance operation; the message says which and why."""


class CapacityError(ComputeError):
    """No capacity or quota for this (region, instance type) now: try the next alternative."""

    def __init__(self, region: str, instance_type: str, detail: str) -> None:
        super().__init__(f"{region} {instance_type}: no capacity: {detail}")
        self.region = region
        self.instance_type = instance_type


class AccessDenied(ComputeError):
    """Credentials are missing or lack a permission: retrying elsewhere will not help."""

    def __init__(self, permission: str, detail: str) -> None:
        super().__init__(
            f"missing permission {permission}: {detail} (grant it; deployments/ holds the "
            "policy carbonshift needs)"
        )
        self.permission = permission


class Compute(Protocol):
    name: str

    def provision(self, request: LaunchRequest) -> Instance:
        """Launch and wait until running. Idempotent per run id: a retry returns the same
        instance. Raises CapacityError or AccessDenied (a ComputeError either way)."""
        ...

    def release(self, run_id: str) -> bool:
        """Release what `run_id` holds and wait until it is gone; False if it held nothing."""
        ...

    def find(self, run_id: str) -> Instance | None: ...

    def interrupted(self, run_id: str) -> bool:
        """True once the provider signals a spot interruption or the instance is gone."""
        ...

    def held(self) -> list[Instance]:
        """Every live instance that carbonshift launched here (for the reaper)."""
        ...
