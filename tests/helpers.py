"""Builders shared by the tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from carbonshift.job import JobSpec
from carbonshift.series import IntensitySeries, Signal
from tests.conftest import T0, make_series

__all__ = ["T0", "job", "make_series", "series_at"]


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
