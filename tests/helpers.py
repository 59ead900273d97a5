"""Builders shared by the tests."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from carbonshift.job import JobSpec
from carbonshift.series import IntensitySeries, Signal
from tests.conftest import T0, make_series

__all__ = ["T0", "job", "make_series", "series_at", "wait_until"]

T = TypeVar("T")


def job(name: str = "j", **fields: Any) -> JobSpec:
    spec: dict[str, Any] = {
        "name": name,
        "work": {"duration": "10m", "instance_type": "g5.xlarge"},
        "earliest_start": T0,
        "regions": ["aws:us-east-1"],
    }
    spec.update(fields)
    if "deadline" not in spec and "within" not in spec:
        spec["within"] = "1h"
    return JobSpec.model_validate(spec)


def series_at(
    values: Sequence[float],
    start: datetime = T0,
    step_min: int = 5,
    zone: str = "A",
    signal: Signal = Signal.LCA,
) -> IntensitySeries:
    return make_series(values, start=start, step_s=step_min * 60, zone=zone, signal=signal)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def wait_until(
    condition: Callable[[], T | None],
    *,
    timeout_s: float,
    what: Callable[[], object],
    poll_s: float = 0.2,
    since: float | None = None,
) -> T:
    """The first truthy value of `condition()`, checked every `poll_s` until `timeout_s` after
    `since` (a `time.monotonic()` reading; default now). Only the deadline fails the test, so
    it is generous: the poll interval decides nothing. On time-out it fails with `what()`, which
    says what was awaited and what was seen instead."""
    deadline = (time.monotonic() if since is None else since) + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout_s:g} s: {what()}")
        time.sleep(poll_s)
