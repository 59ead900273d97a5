"""Limits hold: 40 short training runs due at once across two work pools (limits 2 and 3) never
run more at a moment than their pool allows, read from the server's state history; all complete."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.scale.conftest import (
    DEPLOYMENTS,
    POOLS,
    ScaleStack,
    max_overlap,
    state_history,
    wait_final,
)
from tests.scale.jobs import job, plans_now, run_parameters, training_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]
RUNS = 40
FIGURES: dict[str, Any] = {}


def intervals(states: list[Any]) -> tuple[tuple[datetime, datetime], tuple[datetime, datetime]]:
    """(holding a slot: first Pending to the end, running: first Running to the end)."""
    end = min(s.timestamp for s in states if s.type.value in ("COMPLETED", "FAILED", "CRASHED",
                                                               "CANCELLED"))
    pending = min(s.timestamp for s in states if s.type.value == "PENDING")
    running = min(s.timestamp for s in states if s.type.value == "RUNNING")
    return (pending, end), (running, end)


def test_pool_limits_hold_for_40_runs_at_once(scale_stack: ScaleStack, tmp_path: Path) -> None:
    clouds = ["aws", "gcp"] * (RUNS // 2)
    jobs = [job(f"limit-{i:02d}", cloud) for i, cloud in enumerate(clouds)]
    plans = plans_now(jobs)
    config = training_config(tmp_path)
    pool_of_cloud = {"aws": "carbonshift-gpu-aws", "gcp": "carbonshift-gpu-gcp"}
    started = time.monotonic()
    with scale_stack.client() as client:
        deployment = {
            pool: client.read_deployment_by_name(f"train-model/{name}").id
            for pool, name in DEPLOYMENTS.items()
        }
        ids = [
            client.create_flow_run_from_deployment(
                deployment[pool_of_cloud[cloud]],
                parameters=run_parameters(spec, plan, config),
                tags=["carbonshift", f"carbonshift-job:{spec.name}", "scale-limits"],
            ).id
            for spec, plan, cloud in zip(jobs, plans, clouds, strict=True)
        ]
    runs = wait_final(scale_stack, ids, timeout_s=600)
    FIGURES["all_done_s"] = round(time.monotonic() - started, 1)
    assert [r.state_type.value for r in runs] == ["COMPLETED"] * RUNS, [
        (r.name, r.state_name, r.state.message if r.state else None) for r in runs
        if r.state_type.value != "COMPLETED"]

    held: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    running: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for run in runs:
        slot, body = intervals(state_history(scale_stack, run.id))
        held[run.work_pool_name].append(slot)
        running[run.work_pool_name].append(body)
    assert {pool: len(found) for pool, found in held.items()} == {
        pool: RUNS // 2 for pool in POOLS}
    for pool, limit in POOLS.items():
        FIGURES[pool] = {"limit": limit, "max_running": max_overlap(running[pool]),
                         "max_pending_or_running": max_overlap(held[pool])}
        assert max_overlap(held[pool]) <= limit, (pool, FIGURES[pool])
        # The limit was reached, not merely respected by runs too short to overlap.
        assert max_overlap(held[pool]) == limit, (pool, FIGURES[pool])
    print(f"\nscale limits: {FIGURES}")
