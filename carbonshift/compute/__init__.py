"""Compute behind one port: this machine by default; EC2 and GCE plug in beside it."""

from carbonshift.compute.local import LocalCompute
from carbonshift.compute.port import (
    TAG_JOB,
    TAG_RUN_ID,
    AccessDenied,
    CapacityError,
    Compute,
    ComputeError,
    Instance,
    LaunchRequest,
)

__all__ = [
    "TAG_JOB",
    "TAG_RUN_ID",
    "AccessDenied",
    "CapacityError",
    "Compute",
    "ComputeError",
    "Instance",
    "LaunchRequest",
    "LocalCompute",
]
