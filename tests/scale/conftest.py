"""The PostgreSQL tier: one PostgreSQL 15 and one Prefect server on it per session, two process
work pools with concurrency limits (one per cloud), a worker per pool in its own process, a
worker for the planner's pool, the project's deployments from prefect.yaml, and the automation
that crashes flow runs whose heartbeat stopped.

Without PostgreSQL the tier is skipped on a laptop and FAILS under CI (CI=true): a tier that
skips silently in CI proves nothing."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tools.pgstack import (
    Worker,
    create_process_pool,
    postgres,
    postgres_available,
    prefect_cli,
    prefect_server,
)

REPO = Path(__file__).resolve().parents[2]
POOLS = {"carbonshift-gpu-aws": 2, "carbonshift-gpu-gcp": 3}
DEPLOYMENTS = {"carbonshift-gpu-aws": "gpu-aws", "carbonshift-gpu-gcp": "gpu-gcp"}
PLANNER_POOL = "carbonshift-process"
# The planner's routes (PlanningConfig.routes): each run to its cloud's pool.
ROUTES = {"aws:*": "train-model/gpu-aws", "gcp:*": "train-model/gpu-gcp"}
# Prefect sends a flow-run heartbeat every 30 s at the most often; the automation crashes a run
# that missed one by this much.
HEARTBEAT_S = 30
ZOMBIE_AFTER_S = 40.0
WORKER_ENV = {
    "PREFECT_WORKER_QUERY_SECONDS": "1",
    "PREFECT_WORKER_PREFETCH_SECONDS": "5",
    "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_S),
    "PREFECT_LOGGING_TO_API_BATCH_INTERVAL": "0.5",
}
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@dataclass
class ScaleStack:
    api_url: str
    home: Path
    tmp: Path
    workers: dict[str, Worker] = field(default_factory=dict)

    @contextmanager
    def client(self) -> Iterator[Any]:
        """A sync Prefect client on this server (this process's settings are left alone)."""
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: self.api_url}), get_client(
            sync_client=True
        ) as client:
            yield client

    @contextmanager
    def settings(self) -> Iterator[None]:
        """Prefect settings of this server, for flows run in this process."""
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: self.api_url}):
            yield

    def start_worker(self, pool: str) -> Worker:
        # One worker per pool here, so its limit is the pool's (see tools.pgstack.Worker).
        worker = Worker(self.api_url, pool, self.home, cwd=REPO, env=WORKER_ENV,
                        limit=POOLS.get(pool))
        self.workers[pool] = worker
        return worker

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.stop()
        self.workers.clear()


def _require_postgres() -> None:
    if postgres_available():
        return
    why = "PostgreSQL (initdb, pg_ctl) is not installed: the scale tier needs it"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{why}; CI must install it (apt-get install postgresql)", pytrace=False)
    pytest.skip(why)


def _deploy(stack: ScaleStack) -> None:
    """prefect.yaml's deployments, as users deploy them (a train-model deployment per GPU pool)."""
    prefect_cli(stack.api_url, stack.home, "--no-prompt", "deploy", "--all", cwd=REPO)


@pytest.fixture(scope="session")
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The session's PostgreSQL server: the URL of its `prefect` database."""
    _require_postgres()
    with postgres(tmp_path_factory.mktemp("pg")) as url:
        yield url


@pytest.fixture(scope="session")
def scale_stack(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScaleStack]:
    from flows.local_stack import crash_zombie_runs

    tmp = tmp_path_factory.mktemp("scale")
    home = tmp / "home"
    server_env = {"PREFECT_SERVER_EVENTS_PROACTIVE_GRANULARITY": "PT1S"}
    with prefect_server(pg_url, home, server_env) as api_url:
        stack = ScaleStack(api_url, home, tmp)
        try:
            create_process_pool(api_url, PLANNER_POOL, None, home)
            for pool, limit in POOLS.items():
                create_process_pool(api_url, pool, limit, home)
            _deploy(stack)
            with stack.settings():
                crash_zombie_runs(within_s=ZOMBIE_AFTER_S)
            for pool in [PLANNER_POOL, *POOLS]:
                stack.start_worker(pool)
            yield stack
        finally:
            stack.stop()


# -- reading the server's records ---------------------------------------------------------------


def state_history(stack: ScaleStack, run_id: Any) -> list[Any]:
    with stack.client() as client:
        states = client.read_flow_run_states(run_id)
    return sorted(states, key=lambda s: s.timestamp)


def wait_final(
    stack: ScaleStack, run_ids: list[Any], timeout_s: float, poll_s: float = 1.0
) -> list[Any]:
    """The flow runs once all are final (or when `timeout_s` has passed)."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + timeout_s
    while True:
        with stack.client() as client:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=run_ids)),
                limit=len(run_ids),
            )
        if all(r.state_type.value in FINAL for r in runs) or time.monotonic() > deadline:
            return list(runs)
        time.sleep(poll_s)


def max_overlap(intervals: list[tuple[datetime, datetime]]) -> int:
    """Most intervals open at one moment (an interval ending as another starts: not both)."""
    edges = [(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals]
    edges.sort(key=lambda e: (e[0], e[1]))  # ends before starts at the same instant
    open_now = peak = 0
    for _, delta in edges:
        open_now += delta
        peak = max(peak, open_now)
    return peak


def poll(check: Callable[[], Any], timeout_s: float, what: str, poll_s: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:g} s: {what}")
        time.sleep(poll_s)


def phases(states: list[Any]) -> dict[str, float]:
    """Seconds a run spent in each phase, from its state history: waiting for a slot (first
    Scheduled to first Pending), starting (Pending to Running), running (Running to the end)."""
    first: dict[str, datetime] = {}
    for state in states:
        first.setdefault(state.type.value, state.timestamp)
    end = min(first[t] for t in FINAL if t in first)
    return {
        "waiting": (first["PENDING"] - first["SCHEDULED"]).total_seconds(),
        "starting": (first["RUNNING"] - first["PENDING"]).total_seconds(),
        "running": (end - first["RUNNING"]).total_seconds(),
    }
