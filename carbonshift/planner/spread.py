"""Spread placement: data-parallel replicas in several regions, started together.

Replicas synchronise every step, so all of them run as long as the slowest. We keep one instance
type across the replicas (so the slowest is every one of them) and pick, for each candidate start
(the earliest start, then every column of the common grid after it; the earliest start only for
an urgent job), the `replicas` regions with the lowest emissions over that run; the best start is
the one with the lowest total objective, earliest on ties.
"""

from __future__ import annotations

import numpy as np

from carbonshift import scoring
from carbonshift.catalog import Catalog
from carbonshift.plan import Explanation, InfeasiblePlan, Slot, SpreadPlan
from carbonshift.planner.table import (
    OBJECTIVE_DECIMALS,
    RowTable,
    now_home_slot,
    planned_series,
    savings_against,
    slot_of,
)
from carbonshift.series import IntensitySeries
from carbonshift.units import from_epoch_s


def plan_spread(table: RowTable, j: int, catalog: Catalog) -> SpreadPlan | InfeasiblePlan:
    """The spread plan; every figure (kg, cost, energy, the now-home baseline) covers all
    replicas, and the first (cleanest) shard's forecast is the one the plan carries."""
    job = table.jobs[j]
    spec = job.spec
    k = spec.replicas
    grid = table.grid
    mine = table.rows_of(j)
    rows = mine[table.rows.region_row[mine] >= 0]
    best: tuple[float, list[Slot], list[int]] | None = None
    if grid is not None:
        types = sorted({table.candidates[i].instance_type.name for i in rows})
        for type_name in types:
            mine = np.array(
                [i for i in rows if table.candidates[i].instance_type.name == type_name]
            )
            if len(mine) < k:
                continue
            found = _best_start(table, mine, k)
            if found is not None and (best is None or found[0] < best[0]):
                best = found
    if best is None:
        return InfeasiblePlan(
            job=spec.name,
            reason=f"replicas: {k} replicas need {k} candidate regions with a forecast "
            "and a common instance type over a full run: allow more regions",
        )
    total, shards, picked = best
    emissions = sum(s.emissions_kg for s in shards)
    cost = sum(s.cost_usd for s in shards)
    if scoring.broken_limits(spec, emissions, cost):
        return InfeasiblePlan(
            job=spec.name,
            reason=f"no spread placement meets the limits: the best emits "
            f"{emissions:.1f} kg and costs ${cost:.2f}",
        )
    one = now_home_slot(table, j)
    # The baseline is the whole job started now at home: every replica there, not one shard.
    home = one.model_copy(
        update={
            "energy_kwh": one.energy_kwh * k,
            "emissions_kg": one.emissions_kg * k,
            "cost_usd": one.cost_usd * k,
            "objective": one.objective * k,
        }
    )
    saved, fraction, comparable, note = savings_against(home, shards[0].signal, emissions)
    itype = catalog.instance_type(shards[0].instance_type)
    explanation = Explanation(
        reason=f"spread: {k} replicas on {itype.name} in {', '.join(s.region for s in shards)}, "
        f"started together in the window with the lowest total {spec.objective}{note}",
        runner_up=None,
        now_home=home,
        savings_kg=saved,
        savings_fraction=fraction,
        savings_comparable=comparable,
        energy_estimate=scoring.energy_estimate(
            itype,
            spec.utilisation,
            [catalog.pue[catalog.region(s.region).provider] for s in shards],
            shards[0].duration_s,
            sum(s.energy_kwh for s in shards),
            replicas=k,
        ),
        forecast_source=", ".join(sorted({s.source for s in shards})),
    )
    return SpreadPlan(
        job=spec.name,
        shards=shards,
        explanation=explanation,
        deadline=from_epoch_s(job.deadline_s),
        forecast=planned_series(table, picked[0], shards[0]),
    )


def _best_start(
    table: RowTable, rows: np.ndarray, k: int
) -> tuple[float, list[Slot], list[int]] | None:
    """The start with the lowest total over the `k` best rows: total, shards, their rows."""
    grid = table.grid
    assert grid is not None
    job = table.jobs[int(table.rows.job[rows[0]])]
    spec = job.spec
    duration = float(table.rows.duration_s[rows[0]])
    regions = table.rows.region_row[rows]
    # Candidate starts, as for one region: the earliest start itself (on a point or not: `now`
    # at 00:30 on hourly data), then the common grid's columns after it up to deadline - run;
    # an urgent job has the earliest start only.
    e = job.earliest_s
    at_e = np.array(
        [_mean_from(grid.series[int(r)], e, duration, job.deadline_s) for r in regions]
    )[:, None]
    if spec.urgent:
        window, starts = at_e, np.array([e], dtype=np.int64)
    else:
        lo = int(grid.index_after(e))
        hi = int(grid.index_at_or_before(job.deadline_s - duration))
        cols = np.arange(lo, max(lo, hi + 1))
        window = np.hstack([at_e, grid.means(duration)[regions][:, cols]])
        starts = np.concatenate([[e], grid.times_s[cols]]).astype(np.int64)
    emissions = scoring.emissions_kg(table.energy_kwh[rows][:, None], window)
    score = scoring.objective_of(spec, emissions, table.cost_usd[rows][:, None])
    score = np.where(np.isnan(score), np.inf, score)
    emissions = np.where(np.isnan(emissions), np.inf, emissions)
    # Rows by objective, ties by emissions (a free carbon price ties every region on cost), then
    # by candidate order; the same order picks the start among equal totals, then the earliest.
    score_key = np.round(score, OBJECTIVE_DECIMALS)
    order = np.lexsort((emissions, score_key), axis=0)[:k]
    totals = np.take_along_axis(score, order, axis=0).sum(axis=0)
    if not np.isfinite(totals).any():
        return None
    emitted = np.take_along_axis(emissions, order, axis=0).sum(axis=0)
    keys = (np.round(emitted, OBJECTIVE_DECIMALS), np.round(totals, OBJECTIVE_DECIMALS))
    t = int(np.lexsort(keys)[0])
    picked = order[:, t]
    start_s = int(starts[t])
    shards = []
    for p in picked:
        base = slot_of(table, int(rows[p]))
        mean = float(window[p, t])
        shards.append(
            base.model_copy(
                update={
                    "start": from_epoch_s(start_s),
                    "end": from_epoch_s(start_s + duration),
                    "segments": [],
                    "mean_g_per_kwh": mean,
                    "emissions_kg": float(emissions[p, t]),
                    "objective": float(score[p, t]),
                }
            )
        )
    return float(totals[t]), shards, [int(rows[p]) for p in picked]


def _mean_from(
    series: IntensitySeries, start_s: float, duration_s: float, deadline_s: float
) -> float:
    """The exact mean over `[start_s, start_s + duration_s)`, NaN where the series does not
    cover it or it ends after the deadline."""
    end = start_s + duration_s
    if end > deadline_s or not series.covers(start_s, end):
        return float("nan")
    return series.mean_over(start_s, end)
