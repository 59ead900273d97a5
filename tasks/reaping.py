"""Reaper tasks: how each instance's run stands on the Prefect server, and one region's sweep
(carbonshift.reap decides and terminates). Results are plain values."""

from __future__ import annotations

import time
import uuid
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import StateType

from carbonshift.config import TrainingConfig
from carbonshift.reap import RunState, heartbeat_reader, reap, to_reap
from carbonshift.remote.emulate import emulated_instances
from carbonshift.runs import compute_for
from tasks.clouds import cloud_access

# A flow run in one of these still owns its instance; a type added later counts as active too
# (the heartbeat still decides): the reaper never ends a run's instance on a guess.
ENDED_TYPES = frozenset(
    {StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED}
)
PAGE = 200  # the server's default page limit


def state_of(state_type: StateType | None) -> RunState:
    return RunState.ENDED if state_type in ENDED_TYPES else RunState.ACTIVE


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def run_states(run_ids: list[str]) -> dict[str, tuple[RunState, str]]:
    """Each run id's (state, the state's name) on this Prefect server: ACTIVE while scheduled,
    pending, running, paused or cancelling; ENDED once completed, failed, crashed or cancelled;
    UNKNOWN for a run the server does not know or an id that is no flow run's (not a UUID)."""
    found: dict[str, tuple[RunState, str]] = {r: (RunState.UNKNOWN, "") for r in run_ids}
    by_uuid: dict[uuid.UUID, list[str]] = {}
    for run_id in found:
        try:
            by_uuid.setdefault(uuid.UUID(run_id), []).append(run_id)
        except ValueError:
            continue
    wanted = list(by_uuid)
    with get_client(sync_client=True) as client:
        for start in range(0, len(wanted), PAGE):
            chunk = wanted[start : start + PAGE]
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=chunk)), limit=len(chunk)
            )
            for run in runs:
                state = state_of(run.state_type), run.state_name or ""
                for run_id in by_uuid.get(run.id, []):
                    found[run_id] = state
    return found


@task(cache_policy=NO_CACHE, task_run_name="reap-{region}")
def reap_region(
    region: str, stale_after_s: float, config: TrainingConfig, now_s: float | None = None
) -> list[dict[str, Any]]:
    """Terminate what carbonshift holds in `region` whose run ended or whose heartbeat is older
    than `stale_after_s` (`now_s`: the reaper's clock, default now); one record per instance
    (region, handle, run_id, job, reason, released, error)."""
    logger = get_run_logger()
    grace_s = config.compute.remote.start_grace_s
    if stale_after_s < grace_s:
        logger.warning(
            "stale_after_s %g is less than compute.remote.start_grace_s %g: an instance still "
            "booting (no heartbeat yet) may be reaped; give --stale-after at least %gs",
            stale_after_s,
            grace_s,
            grace_s,
        )
    access = cloud_access(config)
    compute = compute_for(config, region, access)
    held = compute.held()
    if not held:
        logger.info("%s: no carbonshift instances", region)
        return []
    states = run_states([i.run_id for i in held])
    found = to_reap(
        held,
        now_s=time.time() if now_s is None else now_s,
        stale_after_s=stale_after_s,
        run_state=states.get,
        heartbeat_at=heartbeat_reader(
            aws_session=access.aws_session,
            gcp_credentials=access.gcp_credentials,
            # Heartbeats in a folder are right only where the instances are this machine's.
            local_ok=not config.compute.remote_runs or emulated_instances(),
        ),
    )
    done = reap(compute, found)
    logger.info("%s: %d held, %d to reap", region, len(held), len(done))
    for r in done:
        outcome = "terminated" if r.released else "already gone"
        if r.error is not None:
            outcome = f"NOT terminated ({r.error})"
        logger.info("%s (run %s): %s; %s", r.instance.handle, r.instance.run_id, r.reason, outcome)
    return [r.record() for r in done]
