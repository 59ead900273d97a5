"""Location, hardware and time: plan a queue of jobs against per-region forecasts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from carbonshift import scoring
from carbonshift.catalog import Catalog, Region
from carbonshift.job import Candidate, JobSpec, JobSpecError, ResolvedJob, resolve
from carbonshift.plan import Explanation, FeasiblePlan, InfeasiblePlan, Plan, Slot
from carbonshift.planner.batch import Rows, Starts, best_starts
from carbonshift.planner.grid import ForecastGrid
from carbonshift.planner.interruptible import Segments, plan_interruptible
from carbonshift.planner.spread import plan_spread
from carbonshift.planner.static import DEFAULT_LOCAL_START, static_start_s, zone
from carbonshift.planner.table import (
    STATIC_SIGNAL,
    FloatArray,
    RowTable,
    now_home_slot,
    planned_series,
    savings_against,
    slot_of,
)
from carbonshift.series import STATIC_SOURCE, IntensitySeries
from carbonshift.units import from_epoch_s


def forecasts_for(
    regions: Sequence[Region], by_zone: Mapping[str, IntensitySeries]
) -> dict[str, IntensitySeries]:
    """Forecasts keyed by region (`aws:us-east-1`) from forecasts keyed by Electricity Maps zone."""
    return {r.key: by_zone[r.em_zone] for r in regions if r.em_zone in by_zone}


def plan_jobs(
    specs: Sequence[JobSpec],
    forecasts: Mapping[str, IntensitySeries],
    *,
    now: datetime,
    catalog: Catalog,
) -> list[Plan]:
    """Plan every job; a job that cannot be planned gets an infeasible plan saying why."""
    scored = score_jobs(specs, forecasts, now=now, catalog=catalog)
    return [scored.plan(k) for k in range(len(scored))]


@dataclass(frozen=True)
class ScoredQueue:
    """A queue whose jobs are scored together (`evaluate`), each job then planned on its own
    from the scores: `plan(k)` reads only the table, so the plans can be made in any order, or in
    forked processes that share the table as it was."""

    specs: Sequence[JobSpec]
    table: RowTable
    catalog: Catalog
    # By job name, as a plan is looked up: a job refused before scoring, else its table index.
    refusals: dict[str, InfeasiblePlan]
    index: dict[str, int]

    def __len__(self) -> int:
        return len(self.specs)

    def plan(self, k: int) -> Plan:
        """The plan of the k-th job."""
        name = self.specs[k].name
        j = self.index.get(name)
        return self.refusals[name] if j is None else _plan_for(self.table, j, self.catalog)

    @property
    def bad_specs(self) -> list[InfeasiblePlan]:
        """The jobs refused for a field of their spec (the only plans that name a field)."""
        return [p for p in self.refusals.values() if p.field]


def score_jobs(
    specs: Sequence[JobSpec],
    forecasts: Mapping[str, IntensitySeries],
    *,
    now: datetime,
    catalog: Catalog,
) -> ScoredQueue:
    """Resolve and score every job (the batch part of `plan_jobs`); see ScoredQueue."""
    resolved: list[ResolvedJob] = []
    refusals: dict[str, InfeasiblePlan] = {}
    for spec in specs:
        try:
            resolved.append(resolve(spec, catalog, now))
        except JobSpecError as e:
            refusals[spec.name] = refused(e)
    index = {job.spec.name: j for j, job in enumerate(resolved)}
    return ScoredQueue(specs, evaluate(resolved, forecasts).settled(), catalog, refusals, index)


def evaluate(jobs: Sequence[ResolvedJob], forecasts: Mapping[str, IntensitySeries]) -> RowTable:
    """Score every (job, region, instance type): the vectorised part of planning."""
    # Only forecasts that overlap some job's window take part; the rest count as missing.
    start = min((j.earliest_s for j in jobs), default=0)
    end = max((j.deadline_s for j in jobs), default=0)
    wanted = {c.region.key for j in jobs for c in j.candidates}
    keys = sorted(
        k
        for k in wanted
        if k in forecasts
        and forecasts[k].source != STATIC_SOURCE
        and forecasts[k].start_s < end
        and forecasts[k].end_s > start
    )
    row_of = {k: i for i, k in enumerate(keys)}
    grid = ForecastGrid.build([forecasts[k].slice(start, end) for k in keys]) if keys else None
    candidates = [c for j in jobs for c in j.candidates]
    counts = [len(j.candidates) for j in jobs]

    def per_row(values: Sequence[float], dtype: type) -> npt.NDArray[Any]:
        return np.repeat(np.array(values, dtype=dtype), counts)

    job_idx = per_row(list(range(len(jobs))), np.int64)
    rows = Rows(
        job=job_idx,
        region_row=np.array([row_of.get(c.region.key, -1) for c in candidates], dtype=np.int64),
        duration_s=np.array([c.duration_s for c in candidates], dtype=np.float64),
        earliest_s=per_row([j.earliest_s for j in jobs], np.float64),
        deadline_s=per_row([j.deadline_s for j in jobs], np.float64),
        search=per_row([not j.spec.urgent for j in jobs], np.bool_),
    )
    starts = best_starts(grid, rows)
    start_s = starts.start_s.copy()
    mean = starts.mean_g_per_kwh.copy()
    energy = np.array([c.energy_kwh for c in candidates], dtype=np.float64)
    static = np.isnan(mean)
    for i in map(int, np.flatnonzero(static)):
        c = candidates[i]
        job = jobs[int(job_idx[i])]
        start_s[i] = (
            job.earliest_s
            if job.spec.urgent
            else static_start_s(job.earliest_s, job.deadline_s, c.duration_s, c.region.timezone)[0]
        )
        mean[i] = c.region.annual_mean_g_per_kwh
    segments = _interruptible(jobs, candidates, rows, grid, forecasts, start_s, mean, energy)
    emissions = scoring.emissions_kg(energy, mean)
    cost = np.array([c.cost_usd for c in candidates], dtype=np.float64)
    for i, seg in segments.items():
        cost[i] *= seg.run_s / candidates[i].duration_s
    price = per_row([j.spec.carbon_price_usd_per_t for j in jobs], np.float64)
    by_cost = per_row([j.spec.objective == "cost" for j in jobs], np.bool_)
    objective = scoring.objective(emissions, cost, by_cost, price)
    budget = per_row([scoring.limits(j.spec)[0] for j in jobs], np.float64)
    cap = per_row([scoring.limits(j.spec)[1] for j in jobs], np.float64)
    allowed = scoring.within_limits(emissions, cost, budget, cap)
    forecast_signal = grid.signal.value if grid is not None else STATIC_SIGNAL.value
    has_forecast = np.zeros(len(jobs), dtype=np.bool_)
    np.logical_or.at(has_forecast, job_idx, ~static)
    job_signal = tuple(forecast_signal if f else STATIC_SIGNAL.value for f in has_forecast)
    row_signal = np.where(static, STATIC_SIGNAL.value, forecast_signal)
    comparable = row_signal == np.array(job_signal, dtype=object)[job_idx]
    return RowTable(
        list(jobs),
        candidates,
        rows,
        Starts(start_s, mean, starts.coverage),
        static,
        mean,
        energy,
        emissions,
        cost,
        objective,
        allowed,
        segments,
        grid,
        job_signal,
        np.asarray(comparable, dtype=np.bool_),
    )


def ranked_rows(table: RowTable, j: int) -> list[int]:
    """Comparable rows of job j, best first (see RowTable.ranked)."""
    return table.ranked(j)


def _interruptible(
    jobs: Sequence[ResolvedJob],
    candidates: Sequence[Candidate],
    rows: Rows,
    grid: ForecastGrid | None,
    forecasts: Mapping[str, IntensitySeries],
    start_s: FloatArray,
    mean: FloatArray,
    energy: FloatArray,
) -> dict[int, Segments]:
    """Swap in a lowest-steps plan where it beats the row's contiguous window (updates arrays)."""
    out: dict[int, Segments] = {}
    wanted = {j for j, job in enumerate(jobs) if job.spec.interruptible}
    maybe = np.flatnonzero((rows.region_row >= 0) & np.isin(rows.job, list(wanted)))
    for i in map(int, maybe):
        job = jobs[int(rows.job[i])]
        if (
            not job.spec.interruptible
            or job.spec.urgent
            or job.spec.placement == "spread"
            or np.isnan(start_s[i])
        ):
            continue
        c = candidates[i]
        seg = plan_interruptible(
            forecasts[c.region.key],
            job.earliest_s,
            job.deadline_s,
            c.duration_s,
            job.spec.resume_overhead_s,
        )
        if seg is None or len(seg.periods) == 1:
            continue
        scale = seg.run_s / c.duration_s
        if seg.mean_g_per_kwh * scale < mean[i]:
            out[int(i)] = seg
            start_s[i] = seg.start_s
            mean[i] = seg.mean_g_per_kwh
            energy[i] *= scale
    return out


def refused(error: JobSpecError) -> InfeasiblePlan:
    """The plan of a job whose spec is bad: the message, and the field to fix."""
    return InfeasiblePlan(job=error.job, reason=str(error), field=error.field)


def _plan_for(table: RowTable, j: int, catalog: Catalog) -> Plan:
    job = table.jobs[j]
    if job.spec.placement == "spread":
        return plan_spread(table, j, catalog)
    ranked = ranked_rows(table, j)
    kept = [i for i in ranked if table.allowed[i]]
    slots = [slot_of(table, i) for i in kept]
    if not slots:
        best = slot_of(table, ranked[0])
        return InfeasiblePlan(job=job.spec.name, reason=_limits_reason(job, best))
    chosen = slots[0]
    now_home = now_home_slot(table, j)
    return FeasiblePlan(
        job=job.spec.name,
        chosen=chosen,
        alternatives=slots,
        explanation=explain(
            table, j, chosen, slots[1] if len(slots) > 1 else None, now_home, catalog
        ),
        forecast=planned_series(table, kept[0], chosen),
        deadline=from_epoch_s(job.deadline_s),
    )


def explain(
    table: RowTable, j: int, chosen: Slot, runner_up: Slot | None, now_home: Slot, catalog: Catalog
) -> Explanation:
    job = table.jobs[j]
    spec = job.spec
    itype = catalog.instance_type(chosen.instance_type)
    region = catalog.region(chosen.region)
    energy = scoring.energy_estimate(
        itype,
        spec.utilisation,
        [catalog.pue[region.provider]],
        chosen.duration_s,
        chosen.energy_kwh,
    )
    if spec.urgent:
        reason = f"urgent: starts now in the region with the lowest {spec.objective} now"
    elif chosen.source == STATIC_SOURCE:
        local = chosen.start.astimezone(zone(region.timezone)).time()
        when = (
            "static default 02:00 local time"
            if local == DEFAULT_LOCAL_START
            else "static default: starts at once (no 02:00 local time fits before the deadline)"
        )
        reason = (
            f"no forecast for {chosen.region}: {when} ({region.timezone}); intensity estimated "
            "from the zone's annual mean"
        )
    elif chosen.segments:
        reason = (
            f"interruptible: {len(chosen.segments)} runs in the lowest-intensity steps "
            f"before the deadline, {spec.resume_overhead_s:.0f} s overhead per resume"
        )
    else:
        reason = f"lowest forecast {spec.objective} with a start before the deadline"
    if chosen.coverage < 1.0 and chosen.source != STATIC_SOURCE:
        reason += f"; the forecast covered {chosen.coverage:.0%} of the job's window"
    rows = table.rows_of(j)
    apart = sorted({table.candidates[i].region.key for i in rows if not table.comparable[i]})
    if apart:
        reason += (
            f"; not compared: {', '.join(apart)} (no {chosen.signal} forecast; their static "
            f"fallback is a life-cycle annual mean, another signal)"
        )
    saved, fraction, comparable, note = savings_against(
        now_home, chosen.signal, chosen.emissions_kg
    )
    return Explanation(
        reason=reason + note,
        runner_up=runner_up,
        now_home=now_home,
        savings_kg=saved,
        savings_fraction=fraction,
        savings_comparable=comparable,
        energy_estimate=energy,
        forecast_source=chosen.source,
    )


def _limits_reason(job: ResolvedJob, best: Slot) -> str:
    parts = scoring.broken_limits(job.spec, best.emissions_kg, best.cost_usd)
    return (
        f"no candidate meets the {' and '.join(parts)}: the best is {best.emissions_kg:.1f} kg, "
        f"${best.cost_usd:.2f} in {best.region} on {best.instance_type} at "
        f"{best.start.isoformat()}; raise the limit or allow more regions"
    )
