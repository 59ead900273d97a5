"""Planners race: two plan-training runs over the same queue at the same time, each seeing a
different forecast minimum (as two planners a forecast update apart would), then a re-run of the
first, leave exactly one scheduled training run per job: the last plan's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.scale.conftest import ROUTES, ScaleStack, max_overlap, state_history, wait_final

pytestmark = [pytest.mark.integration, pytest.mark.slow]
JOBS = 10


def hourly_trace(folder: Path, now: datetime, low_at_h: int) -> datetime:
    """GB, hourly, 300 g/kWh but 50 in the hour starting `low_at_h` hours from now."""
    hour = now.replace(minute=0, second=0, microsecond=0)
    low = hour + timedelta(hours=low_at_h)
    rows = ["timestamp,g_per_kwh"]
    for h in range(-2, 30):
        t = hour + timedelta(hours=h)
        rows.append(f"{t:%Y-%m-%dT%H:%M:%S}Z,{50 if t == low else 300}")
    folder.mkdir(parents=True)
    (folder / "GB_hourly.csv").write_text("\n".join(rows) + "\n")
    return low


def planner_parameters(tmp: Path, traces: Path) -> dict[str, Any]:
    jobs = [{"name": f"race-{i}", "work": {"duration": "1h", "instance_type": "g5.xlarge"},
             "within": "12h", "regions": ["aws:eu-west-2"],
             "entrypoint": "tests.scale.quick_train:train"} for i in range(JOBS)]
    forecast = {"providers": ["replay"], "traces_dir": str(traces), "replay_as_of_now": False,
                "cache_dir": str(tmp / f"cache-{traces.name}")}
    return {"jobs": jobs, "queue_file": None,
            "config": {"forecast": forecast, "routes": ROUTES,
                       "training": {"checkpoint_store": str(tmp / "ckpt"),
                                    "compute_state_dir": str(tmp / "compute")}}}


def scheduled_runs(stack: ScaleStack, job: str) -> list[Any]:
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
        FlowRunFilterTags,
    )
    from prefect.client.schemas.objects import StateType

    with stack.client() as client:
        return list(client.read_flow_runs(flow_run_filter=FlowRunFilter(
            tags=FlowRunFilterTags(all_=[f"carbonshift-job:{job}"]),
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])))))


def test_two_planners_and_a_rerun_leave_one_scheduled_run_per_job(
    scale_stack: ScaleStack, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    low_a = hourly_trace(tmp_path / "a", now, 3)
    low_b = hourly_trace(tmp_path / "b", now, 5)
    with scale_stack.client() as client:
        daily = client.read_deployment_by_name("plan-training/daily")
        planners = [client.create_flow_run_from_deployment(
            daily.id, parameters=planner_parameters(tmp_path, tmp_path / name)).id
            for name in ("a", "b")]
    done = wait_final(scale_stack, planners, timeout_s=300)
    assert [r.state_type.value for r in done] == ["COMPLETED"] * 2, [r.state for r in done]
    running = []
    for run_id in planners:
        states = state_history(scale_stack, run_id)
        start = min(s.timestamp for s in states if s.type.value == "RUNNING")
        running.append((start, max(s.timestamp for s in states)))
    assert max_overlap(running) == 2, running  # they did plan at the same time

    with scale_stack.client() as client:
        gpu_aws = client.read_deployment_by_name(ROUTES["aws:*"]).id
    for i in range(JOBS):
        found = scheduled_runs(scale_stack, f"race-{i}")
        assert len(found) == 1, [(r.id, r.expected_start_time) for r in found]
        assert found[0].expected_start_time in (low_a, low_b)
        assert found[0].deployment_id == gpu_aws  # routed: aws:eu-west-2 -> gpu-aws

    with scale_stack.client() as client:
        rerun = client.create_flow_run_from_deployment(
            daily.id, parameters=planner_parameters(tmp_path, tmp_path / "a")).id
    (again,) = wait_final(scale_stack, [rerun], timeout_s=300)
    assert again.state_type.value == "COMPLETED", again.state
    for i in range(JOBS):
        found = scheduled_runs(scale_stack, f"race-{i}")
        assert [r.expected_start_time for r in found] == [low_a], found
