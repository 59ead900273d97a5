"""Planner benchmark: 1,000 jobs x 20 regions x 48 h of 5-minute forecasts.

Prints one JSON object. `carbonshift_ms` is the median time of the vectorised planning (best
start for every job x region x instance type, then the best row per job); `plan_jobs_ms` adds
resolving specs and building plans with explanations. `naive_ms` is a straightforward per-window
pandas loop (`.iloc[i:i+w].mean()`), timed on a subset of jobs and scaled to all jobs
(`naive_jobs_timed` says how many); its answers are checked against ours on that subset.

Jobs last 30 min to 12 h in 5-minute steps (up to 139 distinct durations), start within the first
12 h and may wait up to the end of the 48 h. Each job may run on g5.xlarge (AWS, A10G) or
g2-standard-4 (GCP, L4); the L4's throughput is set to the A10G's so that a job lasts whole 5-minute
steps everywhere, which the naive loop needs to check our answers.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from carbonshift.catalog import default_catalog  # noqa: E402
from carbonshift.job import JobSpec, resolve  # noqa: E402
from carbonshift.plan import FeasiblePlan  # noqa: E402
from carbonshift.planner import evaluate, plan_jobs  # noqa: E402
from carbonshift.planner.table import RowTable  # noqa: E402
from carbonshift.series import IntensitySeries, Signal  # noqa: E402
from carbonshift.traces import bundled_traces_dir, read_traces, traces_in  # noqa: E402

JOBS = 1000
REGIONS = 20
HOURS = 48
STEP_S = 300
NAIVE_JOBS = 5
REPEATS = 15
NOW = datetime(2023, 3, 1, tzinfo=UTC)


def forecasts(catalog_regions: list[str]) -> dict[str, IntensitySeries]:
    """Real 2023 traces, a different day per region, interpolated to 5 minutes."""
    traces = list(read_traces(traces_in(bundled_traces_dir())).values())
    slots = HOURS * 3600 // STEP_S
    out = {}
    for i, key in enumerate(catalog_regions):
        trace = traces[i % len(traces)]
        day = 30 + 11 * i
        hourly = trace.g_per_kwh[day * 24 : day * 24 + HOURS + 1]
        fine = np.interp(np.arange(slots) / 12.0, np.arange(len(hourly)), hourly)
        out[key] = IntensitySeries(
            int(NOW.timestamp()), STEP_S, fine, Signal.LCA, f"bench:{trace.zone}", trace.zone
        )
    return out


def jobs(regions: list[str], rng: np.random.Generator) -> list[JobSpec]:
    specs = []
    for j in range(JOBS):
        duration_min = int(rng.integers(6, 145)) * 5  # 30 min to 12 h
        earliest_min = int(rng.integers(0, 145)) * 5  # within the first 12 h
        slack_min = int(rng.integers(0, (HOURS * 60 - earliest_min - duration_min) // 5 + 1)) * 5
        specs.append(
            JobSpec.model_validate(
                {
                    "name": f"job-{j}",
                    "work": {"duration": f"{duration_min}m", "instance_type": "g5.xlarge"},
                    "instance_types": ["g5.xlarge", "g2-standard-4"],
                    "earliest_start": NOW + timedelta(minutes=earliest_min),
                    "deadline": NOW + timedelta(minutes=earliest_min + duration_min + slack_min),
                    "regions": regions,
                }
            )
        )
    return specs


def best_per_job(table: RowTable) -> np.ndarray:
    order = np.lexsort((table.objective, table.rows.job))
    first = np.concatenate([[True], np.diff(table.rows.job[order]) != 0])
    return order[first]


def naive(spec: JobSpec, frames: dict[str, pd.Series[float]], catalog_keys: list[str]) -> float:
    """Lowest window mean over regions, one `.iloc[i:i+w].mean()` per candidate start."""
    assert spec.earliest_start and spec.deadline and hasattr(spec.work, "duration_s")
    w = int(spec.work.duration_s // STEP_S)
    first = int((spec.earliest_start - NOW).total_seconds() // STEP_S)
    last = int((spec.deadline - NOW).total_seconds() // STEP_S) - w
    best = np.inf
    for key in catalog_keys:
        series = frames[key]
        for i in range(first, last + 1):
            best = min(best, series.iloc[i : i + w].mean())
    return float(best)


def main() -> None:
    catalog = default_catalog().with_throughput({"L4": 0.35})
    regions = [r.key for r in list(catalog.regions.values())[:REGIONS]]
    fc = forecasts(regions)
    specs = jobs(regions, np.random.default_rng(42))
    resolved = [resolve(s, catalog, NOW) for s in specs]
    assert all(len(r.candidates) == REGIONS for r in resolved)

    evaluate(resolved, fc)  # warm-up
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        table = evaluate(resolved, fc)
        best = best_per_job(table)
        times.append((time.perf_counter() - t0) * 1000)
    carbonshift_ms = statistics.median(times)
    assert len(best) == JOBS

    t0 = time.perf_counter()
    plans = plan_jobs(specs, fc, now=NOW, catalog=catalog)
    plan_jobs_ms = (time.perf_counter() - t0) * 1000
    assert all(isinstance(p, FeasiblePlan) for p in plans)

    frames = {k: pd.Series(s.g_per_kwh) for k, s in fc.items()}
    t0 = time.perf_counter()
    naive_means = [naive(s, frames, regions) for s in specs[:NAIVE_JOBS]]
    naive_per_job_ms = (time.perf_counter() - t0) * 1000 / NAIVE_JOBS
    ours = [table.mean_g_per_kwh[table.rows.job == j].min() for j in range(NAIVE_JOBS)]
    agrees = bool(np.allclose(ours, naive_means, atol=1e-6))

    print(
        json.dumps(
            {
                "carbonshift_ms": round(carbonshift_ms, 2),
                "naive_ms": round(naive_per_job_ms * JOBS, 1),
                "jobs": JOBS,
                "regions": REGIONS,
                "slots": HOURS * 3600 // STEP_S,
                "plan_jobs_ms": round(plan_jobs_ms, 1),
                "naive_jobs_timed": NAIVE_JOBS,
                "naive_ms_per_job": round(naive_per_job_ms, 2),
                "carbonshift_ms_per_job": round(carbonshift_ms / JOBS, 4),
                "speedup_per_job": round(naive_per_job_ms / (carbonshift_ms / JOBS)),
                "naive_agrees": agrees,
                "repeats": REPEATS,
            }
        )
    )


if __name__ == "__main__":
    main()
