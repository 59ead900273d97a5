"""Limits hold: 40 short urgent training runs, planned at once by the planning flow (half in AWS
regions, half in GCP ones) and routed by PlanningConfig.routes to their cloud's work pool
(limits 2 and 3), never run more at a moment than their pool allows, read from the server's
state history; each runs on the pool of its chosen region's provider, and all complete."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from statistics import median
from typing import Any

import pytest

from carbonshift.config import PlanningConfig
from tests.scale.conftest import (
    DEPLOYMENTS,
    FINAL,
    POOLS,
    ROUTES,
    ScaleStack,
    max_overlap,
    phases,
    state_history,
    wait_final,
)
from tests.scale.jobs import job, training_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]
RUNS = 40
# Two candidate regions per cloud (GB and PJM grids: the bundled replay covers both); the
# urgent planner picks one, and the run must land on that region's cloud's pool.
CANDIDATES = {"aws": ["aws:eu-west-2", "aws:us-east-1"],
              "gcp": ["gcp:europe-west2", "gcp:us-east4"]}
POOL_OF_PROVIDER = {"aws": "carbonshift-gpu-aws", "gcp": "carbonshift-gpu-gcp"}
FIGURES: dict[str, Any] = {}


def intervals(states: list[Any]) -> tuple[tuple[datetime, datetime], tuple[datetime, datetime]]:
    """(holding a slot: first Pending to the end, running: first Running to the end)."""
    end = min(s.timestamp for s in states if s.type.value in FINAL)
    pending = min(s.timestamp for s in states if s.type.value == "PENDING")
    running = min(s.timestamp for s in states if s.type.value == "RUNNING")
    return (pending, end), (running, end)


def test_pool_limits_hold_for_40_planned_runs(scale_stack: ScaleStack, tmp_path: Path) -> None:
    from flows.plan import plan_training

    clouds = ["aws", "gcp"] * (RUNS // 2)
    jobs = [job(f"limit-{i:02d}", cloud, regions=CANDIDATES[cloud])
            for i, cloud in enumerate(clouds)]
    # Short runs (0.3 s of training): the pools' slots are held from Pending on, and a run's
    # process takes seconds to start, so runs still overlap up to the limit.
    training = training_config(tmp_path, options={"steps": "3", "step_s": "0.1"})
    planning = PlanningConfig.model_validate(
        {"routes": ROUTES, "schedule_concurrency": 4, "training": training})
    started = time.monotonic()
    with scale_stack.settings():
        scheduled = plan_training(jobs=[j.model_dump(mode="json", by_alias=True) for j in jobs],
                                  queue_file=None, config=planning)
    FIGURES["planned_s"] = round(time.monotonic() - started, 1)
    assert [s.status for s in scheduled] == ["scheduled"] * RUNS, scheduled
    ids = [s.flow_run_id for s in scheduled]
    runs = wait_final(scale_stack, ids, timeout_s=600)
    FIGURES["all_done_s"] = round(time.monotonic() - started, 1)
    assert len(runs) == RUNS
    assert [r.state_type.value for r in runs] == ["COMPLETED"] * RUNS, [
        (r.name, r.state_name, r.state.message if r.state else None) for r in runs
        if r.state_type.value != "COMPLETED"]

    # Routed: each run on its chosen region's cloud's deployment and pool.
    with scale_stack.client() as client:
        deployment_pool = {
            client.read_deployment_by_name(f"train-model/{name}").id: pool
            for pool, name in DEPLOYMENTS.items()
        }
    chosen = defaultdict(int)
    for run in runs:
        region = run.parameters["plan"]["chosen"]["region"]
        assert run.parameters["job"]["regions"] == CANDIDATES[region.split(":")[0]], run.name
        pool = POOL_OF_PROVIDER[region.split(":")[0]]
        assert (deployment_pool.get(run.deployment_id), run.work_pool_name) == (pool, pool), (
            run.name, region, run.work_pool_name)
        chosen[region] += 1
    FIGURES["chosen_regions"] = dict(sorted(chosen.items()))

    held: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    running: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    timings: dict[str, list[dict[str, float]]] = defaultdict(list)
    for run in runs:
        states = state_history(scale_stack, run.id)
        slot, body = intervals(states)
        held[run.work_pool_name].append(slot)
        running[run.work_pool_name].append(body)
        timings[run.work_pool_name].append(phases(states))
    assert {pool: len(found) for pool, found in held.items()} == {
        pool: RUNS // 2 for pool in POOLS}
    for pool, limit in POOLS.items():
        FIGURES[pool] = {
            "limit": limit,
            "max_running": max_overlap(running[pool]),
            "max_pending_or_running": max_overlap(held[pool]),
            # Median and longest seconds per phase (where a slow tier's time goes).
            **{phase: (round(median(t[phase] for t in timings[pool]), 1),
                       round(max(t[phase] for t in timings[pool]), 1))
               for phase in ("waiting", "starting", "running")},
        }
        assert max_overlap(held[pool]) <= limit, (pool, FIGURES[pool])
        # The limit was reached, not merely respected by runs too short to overlap.
        assert max_overlap(held[pool]) == limit, (pool, FIGURES[pool])
    print(f"\nscale limits: {FIGURES}")
