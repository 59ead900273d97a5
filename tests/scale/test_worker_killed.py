"""A worker killed mid-run (kill -9, with its flow-run process, as a dead machine leaves them):
the server marks the run Crashed (heartbeats stop; the zombie automation acts), the reaper
releases its compute, and a re-plan schedules a new run for the job that resumes from the
crashed run's checkpoint and completes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from carbonshift.config import PlanningConfig, TrainingConfig
from tests.scale.conftest import (
    ROUTES,
    ZOMBIE_AFTER_S,
    ScaleStack,
    poll,
    state_history,
    wait_final,
)
from tests.scale.jobs import job, plans_now, run_parameters, training_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]
POOL = "carbonshift-gpu-aws"
FIGURES: dict[str, Any] = {}


def read_run(stack: ScaleStack, run_id: Any) -> Any:
    with stack.client() as client:
        return client.read_flow_run(run_id)


def test_killed_worker_run_is_crashed_released_and_replanned(
    scale_stack: ScaleStack, tmp_path: Path
) -> None:
    spec = job("killed-worker", "aws")
    (plan,) = plans_now([spec])
    options = {"steps": "6", "step_s": "0.2", "hold_at": "2"}
    config = training_config(tmp_path, options=options)
    compute = tmp_path / "compute"
    with scale_stack.client() as client:
        deployment = client.read_deployment_by_name("train-model/gpu-aws")
        run_id = client.create_flow_run_from_deployment(
            deployment.id, parameters=run_parameters(spec, plan, config),
            tags=["carbonshift", f"carbonshift-job:{spec.name}"]).id
    # Training under way: its compute is held and its checkpoint at step 2 written.
    poll(lambda: list(compute.glob("*.json"))
         and list((tmp_path / "ckpt").rglob("ckpt-000000000002"))
         and read_run(scale_stack, run_id).state_type.value == "RUNNING",
         timeout_s=180, what="the run training, holding at step 2")
    killed = scale_stack.workers[POOL].kill()
    killed_at = time.time()
    assert len(killed) >= 2, killed  # the worker and the flow run's process
    scale_stack.start_worker(POOL)  # the pool keeps a worker for the runs that follow

    (crashed,) = wait_final(scale_stack, [run_id], timeout_s=ZOMBIE_AFTER_S + 90)
    assert crashed.state_type.value == "CRASHED", crashed.state
    states = state_history(scale_stack, run_id)
    crashed_at = next(s.timestamp for s in states if s.type.value == "CRASHED")
    FIGURES["kill_to_crashed_s"] = round(crashed_at.timestamp() - killed_at, 1)
    # No hook ran (the worker died): the compute is still held until the reaper comes.
    assert list(compute.glob("*.json"))

    from flows.reap import reap_instances

    training = TrainingConfig.model_validate(config)
    with scale_stack.settings():
        swept = reap_instances(regions=["aws:eu-west-2"], stale_after_s=900, config=training,
                               return_state=True)
    summary = swept.result()
    (record,) = summary["instances"]
    assert record["run_id"] == str(run_id) and record["released"], record
    assert "Crashed" in record["reason"], record
    assert not list(compute.glob("*.json"))

    # Re-planned: a plan run over the same job schedules one new run that resumes from the
    # crashed run's checkpoint, and it completes the job.
    from flows.plan import plan_training

    planning = PlanningConfig.model_validate({"routes": ROUTES, "training": config})
    with scale_stack.settings():
        plan_training(jobs=[spec.model_dump(mode="json", by_alias=True)], queue_file=None,
                      config=planning)
    with scale_stack.client() as client:
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            tags=FlowRunFilterTags(all_=[f"carbonshift-job:{spec.name}"])))
    (new,) = [r for r in runs if r.id != run_id]
    # Routed to its region's pool, resuming in the crashed run's checkpoint folder.
    assert new.deployment_id == deployment.id, new
    assert new.parameters["resume_from"] == f"{tmp_path / 'ckpt'}/{spec.name}/{run_id}", new
    FIGURES["resume_from"] = new.parameters["resume_from"]
    (done,) = wait_final(scale_stack, [new.id], timeout_s=180)
    assert done.state_type.value == "COMPLETED", done.state
    assert done.state.message == "trained 6 steps"
    print(f"\nworker killed: {FIGURES}")
