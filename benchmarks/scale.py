"""Scale benchmark (issue 12): the planning flow against a Prefect server on PostgreSQL, and the
CLI's `plan --json` on 10,000 jobs. Prints one JSON object.

Flow against client: 1,000 jobs over 20 regions (benchmarks/queues.py, seeded, every job
plannable) are planned and scheduled by `plan-training` (flows/plan.py, `config.schedule` on,
forecasts replayed from the bundled traces onto today) into `train-model/bench-flow`, a
deployment with no worker, so every run stays scheduled. The same runs (parameters, start, name,
tags; the idempotency key with a suffix, since keys are unique per flow) are then created by a
plain client loop, one `create_flow_run_from_deployment` each, into `train-model/bench-client`:
each side starts from no run of its deployment, and the server is left SETTLE_S seconds between
them. Then the flow plans the same jobs again, under names of their own (a run over the first
names would replace their runs, a re-plan), into `train-model/bench-flow-again`, so that the
flow's figure brackets the client's: `flow_s` is the mean of the two flow runs
(`flow_runs_s`), `client_s` the loop's wall time, `ratio` = flow_s / client_s, `runs_per_s`
the flow's runs per second. The flow creates SCHEDULE_CONCURRENCY runs at once
(`config.schedule_concurrency`, as docs/scaling.md recommends on PostgreSQL); the client loop
one at a time.
`flow_tasks_s` is the server's record of each task of the first flow run
(summed by task name; the forecast tasks run side by side); `flow_outside_tasks_s` is the flow's
wall time when no task ran (flow run set-up and teardown, the plan-made events, Prefect's
handling of task parameters).

`plan --json`: `carbonshift plan --json` on 10,000 jobs (benchmarks/queues.py, seed 1) in a
subprocess, PLAN_RUNS times: `plan_json_10k_s` the median wall time (every run in
`plan_json_10k_runs_s`), peak RSS the largest (`wait4`'s rusage: the process and its forks);
then once in one process (CARBONSHIFT_PLAN_WORKERS=1). Every run must print the same text.

--profile adds the top entries (cumulative) of cProfile for a second flow run (its time is not
the figure above) and for a second `plan --json`, and keeps the profiles in --out.

    python benchmarks/scale.py [--jobs 1000] [--regions 20] [--plan-jobs 10000] [--profile]
        [--skip-flow] [--out DIR]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.queues import make_queue, write_queue  # noqa: E402

PLAN_NOW = "2023-06-01T12:00:00Z"
# One deployment per side, so that each starts from no run and nothing is deleted while the
# other is timed (a bulk delete queues the server's log clean-up of every run it deletes).
FLOW_DEPLOYMENT = "bench-flow"
CLIENT_DEPLOYMENT = "bench-client"
FLOW_AGAIN_DEPLOYMENT = "bench-flow-again"
PROFILED_DEPLOYMENT = "bench-profiled"
SCHEDULE_CONCURRENCY = 4
SETTLE_S = 20.0  # the server persists the last side's events and states before the next starts
TOP = 25
# plan --json is timed this many times: its figure is the median (a busy machine moves one run
# by half a second).
PLAN_RUNS = 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--regions", type=int, default=20)
    parser.add_argument("--plan-jobs", type=int, default=10_000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--skip-flow", action="store_true", help="plan --json only")
    parser.add_argument("--out", type=Path, default=None, help="folder for queues and profiles")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="carbonshift-scale-"))
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"machine": machine()}
    result.update(plan_json(out, args.plan_jobs, args.profile))
    if not args.skip_flow:
        result.update(flow_and_client(out, args.jobs, args.regions, args.profile))
    result["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result))


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
    }


# -- plan --json -----------------------------------------------------------------------------


def plan_json(out: Path, jobs: int, profile: bool) -> dict[str, Any]:
    queue = write_queue(out / f"jobs-{jobs}.yaml", jobs)
    args = ["plan", "--jobs", str(queue), "--now", PLAN_NOW, "--json"]
    # The `carbonshift` command, as users run it (`python -m carbonshift` is its entry point).
    runs = [_measured([sys.executable, "-m", "carbonshift", *args], out / "plan.json")]
    for i in range(1, PLAN_RUNS):
        runs.append(_measured([sys.executable, "-m", "carbonshift", *args], out / f"plan-{i}.json"))
    one = _measured(
        [sys.executable, "-m", "carbonshift", *args],
        out / "plan-one-process.json",
        {"CARBONSHIFT_PLAN_WORKERS": "1"},
    )
    for _, _, code in [*runs, one]:
        if code not in (0, 1):  # 1: some jobs are not plannable, which the queue has on purpose
            raise RuntimeError(f"plan --json exited with {code}")
    text = (out / "plan.json").read_bytes()
    others = [out / f"plan-{i}.json" for i in range(1, PLAN_RUNS)] + [out / "plan-one-process.json"]
    if any(p.read_bytes() != text for p in others):
        raise RuntimeError("plan --json printed different plans on runs of one queue")
    plans = json.loads(text)["plans"]
    walls = [w for w, _, _ in runs]
    figures: dict[str, Any] = {
        "plan_json_jobs": jobs,
        "plan_json_feasible": sum(p["feasible"] for p in plans),
        "plan_json_10k_s": round(statistics.median(walls), 2),
        "plan_json_10k_runs_s": [round(w, 2) for w, _, _ in runs],
        "plan_json_10k_peak_mb": round(max(mb for _, mb, _ in runs), 1),
        "plan_json_10k_one_process_s": round(one[0], 2),
        "plan_json_10k_one_process_peak_mb": round(one[1], 1),
    }
    if profile:
        # One process, no head start: the profile sees every part of the work.
        stats = out / "plan-json.prof"
        prof = [sys.executable, "-m", "cProfile", "-o", str(stats), "-m", "carbonshift.cli", *args]
        _measured(prof, out / "plan-profiled.json", {"CARBONSHIFT_PLAN_WORKERS": "1"})
        figures["plan_json_profile_top"] = top_entries(pstats.Stats(str(stats)))
    return figures


def _measured(
    cmd: list[str], stdout: Path, extra_env: dict[str, str] | None = None
) -> tuple[float, float, int]:
    """Wall seconds, peak RSS in MB and exit code of one process: its rusage by wait4, which
    holds the largest RSS of it and of the processes it forked and waited for."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(extra_env or {})}
    with stdout.open("wb") as sink:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss / 1024, proc.returncode


def top_entries(stats: pstats.Stats, n: int = TOP) -> list[str]:
    """The top n entries by cumulative time, one line each: cumulative s, calls, function."""
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    rows = sorted(table.items(), key=lambda kv: -kv[1][3])[:n]
    out = []
    for (path, line, name), (_, calls, _, cumulative, _) in rows:
        where = f"{_short(path)}:{line}({name})" if line else name
        out.append(f"{cumulative:8.3f} s {calls:>9} {where}")
    return out


def _short(where: str) -> str:
    for marker in ("site-packages/", str(ROOT) + "/", "lib/python3"):
        if marker in where:
            return where.split(marker, 1)[1]
    return where


# -- the flow against a client loop ----------------------------------------------------------


def flow_and_client(out: Path, jobs: int, regions: int, profile: bool) -> dict[str, Any]:
    from tools.pgstack import postgres, prefect_env, prefect_server

    home = out / "prefect-home"
    with postgres(out / "pg") as db_url, prefect_server(db_url, home=home) as api_url:
        env = prefect_env(api_url, home)
        for key in ("PREFECT_HOME", "PREFECT_API_URL", "PREFECT_SERVER_ANALYTICS_ENABLED"):
            os.environ[key] = env[key]
        return _against(out, jobs, regions, profile)


def _against(out: Path, jobs: int, regions: int, profile: bool) -> dict[str, Any]:
    # Prefect is imported once its settings point at the benchmark's server.
    from prefect.client.orchestration import get_client

    from carbonshift.catalog import default_catalog
    from carbonshift.config import ForecastConfig, PlanningConfig
    from carbonshift.job import JobSpecError, parse_jobs, resolve
    from flows.plan import plan_training
    from flows.train import train_model

    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    # Every job plannable (no window shorter than its run), so that each one gets a run.
    catalog = default_catalog()
    items = make_queue(jobs + jobs // 2, regions=regions, seed=7, now=now)
    kept = []
    for item, spec in zip(items, parse_jobs(items).jobs, strict=True):
        try:
            resolve(spec, catalog, now)
        except JobSpecError:
            continue
        kept.append(item)
    # One queue per flow run, the same jobs under names of their own: the planner keeps one
    # scheduled run per job across every deployment of the flow, so a run over names that
    # already have runs would replace them (a re-plan: a create and a delete or two per job),
    # not schedule them as the first run did.
    queues = {
        name: _queue_file(out / f"flow-jobs-{jobs}-{name}.yaml", kept[:jobs], suffix)
        for name, suffix in (
            (FLOW_DEPLOYMENT, ""),
            (FLOW_AGAIN_DEPLOYMENT, "-again"),
            (PROFILED_DEPLOYMENT, "-profiled"),
        )
    }

    ids = {
        name: train_model.to_deployment(name=name).apply()
        for name in (FLOW_DEPLOYMENT, CLIENT_DEPLOYMENT, FLOW_AGAIN_DEPLOYMENT, PROFILED_DEPLOYMENT)
    }

    def run_flow(deployment: str) -> Any:
        config = PlanningConfig(
            forecast=ForecastConfig(providers=["replay", "static"], cache_dir=str(out / "cache")),
            training_deployment=f"train-model/{deployment}",
            schedule=True,
            # What docs/scaling.md recommends on PostgreSQL: a few creates at once.
            schedule_concurrency=SCHEDULE_CONCURRENCY,
        )
        return plan_training(
            queue_file=str(queues[deployment]), config=config, now=now, return_state=True
        )

    with get_client(sync_client=True) as client:
        client.read_deployment(ids[FLOW_DEPLOYMENT])  # connection made before the clocks start
        t0 = time.perf_counter()
        state = run_flow(FLOW_DEPLOYMENT)
        flow_s = time.perf_counter() - t0
        scheduled = state.result()
        runs = _runs(client, ids[FLOW_DEPLOYMENT])
        tasks, tasks_wall_s = _task_times(client, state.state_details.flow_run_id)
        time.sleep(SETTLE_S)

        t0 = time.perf_counter()
        for run in runs:
            client.create_flow_run_from_deployment(
                ids[CLIENT_DEPLOYMENT],
                parameters=run.parameters,
                state=_scheduled(run.expected_start_time),
                name=run.name,
                tags=run.tags,
                # Keys are unique per flow: the flow's runs hold theirs.
                idempotency_key=f"{run.idempotency_key}-client",
            )
        client_s = time.perf_counter() - t0
        created = len(_runs(client, ids[CLIENT_DEPLOYMENT]))
        # The flow again, after the client loop, into a deployment of its own (new keys): the
        # server holds more runs for each later side, and load from outside comes and goes, so
        # the flow's figure brackets the client's (the mean of one run before and one after).
        time.sleep(SETTLE_S)
        t0 = time.perf_counter()
        again = run_flow(FLOW_AGAIN_DEPLOYMENT)
        flow_again_s = time.perf_counter() - t0
        again_runs = len(_runs(client, ids[FLOW_AGAIN_DEPLOYMENT]))
        again.result()
        flow_runs_s = [round(flow_s, 2), round(flow_again_s, 2)]
        flow_s = (flow_s + flow_again_s) / 2

        figures: dict[str, Any] = {
            "flow_s": round(flow_s, 2),
            "client_s": round(client_s, 2),
            "ratio": round(flow_s / client_s, 3),
            "runs_per_s": round(len(runs) / flow_s, 1),
            "flow_runs_s": flow_runs_s,
            "runs": len(runs),
            "runs_again": again_runs,
            "client_runs": created,
            "jobs": jobs,
            "regions": regions,
            "scheduled_statuses": _count(s.status for s in scheduled),
            "flow_tasks_s": tasks,
            "flow_outside_tasks_s": round(flow_runs_s[0] - tasks_wall_s, 2),  # the first run's
            "schedule_concurrency": SCHEDULE_CONCURRENCY,
        }
        if profile:
            time.sleep(SETTLE_S)
            run = partial(run_flow, PROFILED_DEPLOYMENT)
            figures["flow_profile_top"] = _profiled(run, out / "flow.prof")
    return figures


def _queue_file(path: Path, items: list[dict[str, Any]], suffix: str) -> Path:
    renamed = [{**item, "name": item["name"] + suffix} for item in items]
    path.write_text(yaml.safe_dump({"jobs": renamed}, sort_keys=False), encoding="utf-8")
    return path


def _scheduled(when: Any) -> Any:
    from prefect.states import Scheduled

    return Scheduled(scheduled_time=when)


def _runs(client: Any, deployment_id: Any) -> list[Any]:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    found: list[Any] = []
    while True:
        page = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
            limit=200,
            offset=len(found),
        )
        found += page
        if len(page) < 200:
            return found


def _task_times(client: Any, flow_run_id: Any) -> tuple[dict[str, float], float]:
    """Seconds per task name (summed over its runs), from the server's task-run records, and
    the time any task was running (their union: the forecast tasks overlap)."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    runs = client.read_task_runs(
        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])), limit=200
    )
    out: dict[str, float] = {}
    spans = []
    for run in runs:
        if run.start_time and run.end_time:
            name = run.name.rsplit("-", 1)[0]
            seconds = (run.end_time - run.start_time).total_seconds()
            out[name] = round(out.get(name, 0.0) + seconds, 2)
            spans.append((run.start_time, run.end_time))
    busy = 0.0
    reach = None
    for start, end in sorted(spans):
        if reach is None or start > reach:
            busy += (end - start).total_seconds()
            reach = end
        elif end > reach:
            busy += (end - reach).total_seconds()
            reach = end
    return dict(sorted(out.items(), key=lambda kv: -kv[1])), busy


def _profiled(run: Callable[[], Any], path: Path) -> list[str]:
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        run()
    finally:
        profiler.disable()
    profiler.dump_stats(str(path))
    return top_entries(pstats.Stats(str(path)))


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


if __name__ == "__main__":
    main()
