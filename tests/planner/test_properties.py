"""Hypothesis properties of the planner, and an exhaustive oracle for its vectorised search."""

from __future__ import annotations

from datetime import datetime, timedelta
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from carbonshift.catalog import Catalog, default_catalog
from carbonshift.job import JobSpec
from carbonshift.plan import FeasiblePlan
from carbonshift.planner import plan_jobs
from carbonshift.series import IntensitySeries
from tests.helpers import T0, job, series_at

REGIONS = ["aws:us-east-1", "aws:eu-west-2", "aws:eu-central-1", "aws:us-west-1"]
CATALOG = default_catalog()
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def scenarios(draw: st.DrawFn, max_regions: int = 3) -> tuple[JobSpec, dict[str, IntensitySeries]]:
    """A job and forecasts on any grid offset (any second past T0), `now` and the earliest
    start anywhere (off every grid), durations in whole seconds."""
    n_regions = draw(st.integers(1, max_regions))
    forecasts = {}
    for key in REGIONS[:n_regions]:
        step = draw(st.sampled_from([5, 15, 30, 60]))
        n = draw(st.integers(2, 48 if step < 30 else 16))
        values = draw(st.lists(st.integers(0, 500), min_size=n, max_size=n))
        offset_s = draw(
            st.one_of(
                st.integers(0, 2).map(lambda k, step=step: k * step * 60),  # on T0's grid
                st.integers(0, 2 * step).map(lambda m: m * 60),  # :07, :30, ...
                st.integers(0, 2 * step * 60),  # any second
            )
        )
        forecasts[key] = series_at(
            values, start=T0 + timedelta(seconds=offset_s), step_min=step, zone=key
        )
    # The job's window lies where every forecast has data, so no region falls back to static.
    first = max(s.start_s for s in forecasts.values()) - int(T0.timestamp())
    last = min(s.end_s for s in forecasts.values()) - int(T0.timestamp())
    assume(last - first >= 120)
    duration = draw(st.integers(60, (last - first) // 2))
    earliest = draw(st.integers(first, last - duration))
    slack = draw(st.integers(0, last - earliest - duration))
    now = draw(st.integers(earliest - 3600, earliest))
    spec = job(
        work={"duration": f"{duration}s", "instance_type": "g5.xlarge"},
        earliest_start=T0 + timedelta(seconds=earliest),
        deadline=T0 + timedelta(seconds=earliest + duration + slack),
        regions=list(forecasts),
    )
    if draw(st.booleans()):  # no earliest start: the job may start at `now`
        spec = spec.model_copy(update={"earliest_start": None})
        now = earliest
    return spec, forecasts, T0 + timedelta(seconds=now)


def _plan(  # type: ignore[no-untyped-def]
    spec: JobSpec, forecasts: dict[str, IntensitySeries], now: datetime, catalog: Catalog = CATALOG
):
    (plan,) = plan_jobs([spec], forecasts, now=now, catalog=catalog)
    return plan


def _exact_mean(s: IntensitySeries, start_s: int, end_s: int) -> Fraction:
    """Time-weighted mean of the step function over [start_s, end_s), point by point, exactly."""
    area = Fraction(0)
    for i, value in enumerate(s.g_per_kwh.tolist()):
        a = s.start_s + i * s.step_s
        overlap = min(end_s, a + s.step_s) - max(start_s, a)
        if overlap > 0:
            area += Fraction(value) * overlap
    return area / (end_s - start_s)


def _oracle(spec: JobSpec, forecasts: dict[str, IntensitySeries], now: datetime) -> float:
    """Brute force over every allowed start (the earliest start, and every point of a region's
    forecast after it whose run ends by the deadline and lies inside the data), each mean summed
    point by point in exact arithmetic: no code shared with the planner."""
    assert spec.deadline and hasattr(spec.work, "duration_s")
    e = int(max(spec.earliest_start or now, now).timestamp())
    d = int(spec.work.duration_s)
    deadline = int(spec.deadline.timestamp())
    best: Fraction | None = None
    for s in forecasts.values():
        points = [s.start_s + i * s.step_s for i in range(len(s))]
        for t in [e] + [p for p in points if p > e]:
            if s.start_s <= t and t + d <= s.start_s + len(s) * s.step_s and t + d <= deadline:
                mean = _exact_mean(s, t, t + d)
                best = mean if best is None or mean < best else best
    return float(best) if best is not None else float("inf")


@SETTINGS
@given(scenarios())
def test_search_matches_exhaustive_oracle(scenario) -> None:  # type: ignore[no-untyped-def]
    spec, forecasts, now = scenario
    expected = _oracle(spec, forecasts, now)
    assume(np.isfinite(expected))
    plan = _plan(spec, forecasts, now)
    assert plan.chosen.source != "static"
    assert plan.chosen.mean_g_per_kwh == pytest.approx(expected, abs=1e-6)


@SETTINGS
@given(scenarios())
def test_chosen_slot_lies_in_the_window(scenario) -> None:  # type: ignore[no-untyped-def]
    spec, forecasts, now = scenario
    plan = _plan(spec, forecasts, now)
    assert isinstance(plan, FeasiblePlan), plan
    assert max(spec.earliest_start or now, now) <= plan.chosen.start
    assert plan.chosen.end <= spec.deadline


@SETTINGS
@given(scenarios())
def test_never_above_starting_now(scenario) -> None:  # type: ignore[no-untyped-def]
    spec, forecasts, now = scenario
    plan = _plan(spec, forecasts, now)
    now = plan.explanation.now_home
    assume(now.source != "static")
    assert plan.chosen.emissions_kg <= now.emissions_kg + 1e-9


@SETTINGS
@given(scenarios())
def test_interruptible_without_overhead_never_worse(scenario) -> None:  # type: ignore[no-untyped-def]
    spec, forecasts, now = scenario
    contiguous = _plan(spec, forecasts, now)
    interrupted = _plan(spec.model_copy(update={"interruptible": True}), forecasts, now)
    assume(contiguous.chosen.source != "static")
    assert interrupted.chosen.emissions_kg <= contiguous.chosen.emissions_kg * (1 + 1e-9) + 1e-12


@SETTINGS
@given(scenarios(max_regions=4), st.integers(1, 3))
def test_adding_a_region_never_makes_it_worse(scenario, keep: int) -> None:  # type: ignore[no-untyped-def]
    spec, forecasts, now = scenario
    assume(keep < len(forecasts))
    fewer_keys = list(forecasts)[:keep]
    fewer = _plan(
        spec.model_copy(update={"regions": fewer_keys}), {k: forecasts[k] for k in fewer_keys}, now
    )
    more = _plan(spec, forecasts, now)
    assert more.chosen.objective <= fewer.chosen.objective + 1e-9


@SETTINGS
@given(scenarios(max_regions=4), st.sampled_from([0.0, 1e-12]))
def test_cost_ties_go_to_the_lowest_emissions(scenario, price: float) -> None:  # type: ignore[no-untyped-def]
    # One instance type costs the same in every region: with a (near-)free carbon price every
    # candidate ties on cost, and the cleanest must win, not the first listed.
    spec, forecasts, now = scenario
    spec = spec.model_copy(update={"objective": "cost", "carbon_price_usd_per_t": price})
    plan = _plan(spec, forecasts, now)
    cheapest = min(round(s.cost_usd, 9) for s in plan.alternatives)
    tied = [s for s in plan.alternatives if round(s.cost_usd, 9) == cheapest]
    assert plan.chosen.emissions_kg == pytest.approx(min(s.emissions_kg for s in tied), abs=1e-12)
