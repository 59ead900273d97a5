"""Hypothesis properties of the planner, and an exhaustive oracle for its vectorised search."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from carbonshift.catalog import Catalog, default_catalog
from carbonshift.job import JobSpec
from carbonshift.planner import plan_jobs
from carbonshift.series import IntensitySeries
from tests.helpers import T0, job, series_at

REGIONS = ["aws:us-east-1", "aws:eu-west-2", "aws:eu-central-1", "aws:us-west-1"]
CATALOG = default_catalog()
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def scenarios(draw: st.DrawFn, max_regions: int = 3) -> tuple[JobSpec, dict[str, IntensitySeries]]:
    n_regions = draw(st.integers(1, max_regions))
    forecasts = {}
    for key in REGIONS[:n_regions]:
        step = draw(st.sampled_from([5, 15, 30, 60]))
        n = draw(st.integers(2, 48 if step < 30 else 16))
        values = draw(st.lists(st.integers(0, 500), min_size=n, max_size=n))
        offset = draw(st.integers(0, 2)) * step
        forecasts[key] = series_at(
            values, start=T0 + timedelta(minutes=offset), step_min=step, zone=key
        )
    # The job's window lies where every forecast has data, so no region falls back to static.
    first = (max(s.start_s for s in forecasts.values()) - int(T0.timestamp())) // 60
    last = (min(s.end_s for s in forecasts.values()) - int(T0.timestamp())) // 60
    assume(last - first >= 2)
    duration = draw(st.integers(1, (last - first) // 2))
    earliest = draw(st.integers(first, last - duration))
    slack = draw(st.integers(0, last - earliest - duration))
    spec = job(
        work={"duration": f"{duration}m", "instance_type": "g5.xlarge"},
        earliest_start=T0 + timedelta(minutes=earliest),
        deadline=T0 + timedelta(minutes=earliest + duration + slack),
        regions=list(forecasts),
    )
    return spec, forecasts


def _plan(spec: JobSpec, forecasts: dict[str, IntensitySeries], catalog: Catalog = CATALOG):
    (plan,) = plan_jobs([spec], forecasts, now=spec.earliest_start, catalog=catalog)
    return plan


def _oracle(spec: JobSpec, forecasts: dict[str, IntensitySeries]) -> float:
    """Lowest mean over every candidate start, each computed exactly and one at a time."""
    assert spec.earliest_start and spec.deadline and hasattr(spec.work, "duration_s")
    e = spec.earliest_start.timestamp()
    d = spec.work.duration_s
    latest = spec.deadline.timestamp() - d
    best = np.inf
    for s in forecasts.values():
        starts = [e] + [t for t in s.times_s if e < t <= latest]
        for t in starts:
            if s.covers(t, t + d) and t + d <= spec.deadline.timestamp():
                best = min(best, s.mean_over(t, t + d))
    return float(best)


@SETTINGS
@given(scenarios())
def test_search_matches_exhaustive_oracle(scenario) -> None:  # type: ignore[no-untyped-def]
    spec, forecasts = scenario
    expected = _oracle(spec, forecasts)
    assume(np.isfinite(expected))
    plan = _plan(spec, forecasts)
    assert plan.chosen.source != "static"
    assert plan.chosen.mean_g_per_kwh == pytest.approx(expected, abs=1e-6)


@SETTINGS
@given(scenarios())
def test_chosen_slot_lies_in_the_window(scenario) -> None:  # type: ignore[no-untyped-def]
    spec, forecasts = scenario
    plan = _plan(spec, forecasts)
    assert plan.feasible
    assert spec.earliest_start <= plan.chosen.start
    assert plan.chosen.end <= spec.deadline


@SETTINGS
@given(scenarios())
def test_never_above_starting_now(scenario) -> None:  # type: ignore[no-untyped-def]
    spec, forecasts = scenario
    plan = _plan(spec, forecasts)
    now = plan.explanation.now_home
    assume(now.source != "static")
    assert plan.chosen.emissions_kg <= now.emissions_kg + 1e-9


@SETTINGS
@given(scenarios())
def test_interruptible_without_overhead_never_worse(scenario) -> None:  # type: ignore[no-untyped-def]
    spec, forecasts = scenario
    contiguous = _plan(spec, forecasts)
    interrupted = _plan(spec.model_copy(update={"interruptible": True}), forecasts)
    assume(contiguous.chosen.source != "static")
    assert interrupted.chosen.emissions_kg <= contiguous.chosen.emissions_kg * (1 + 1e-9) + 1e-12


@SETTINGS
@given(scenarios(max_regions=4), st.integers(1, 3))
def test_adding_a_region_never_makes_it_worse(scenario, keep: int) -> None:  # type: ignore[no-untyped-def]
    spec, forecasts = scenario
    assume(keep < len(forecasts))
    fewer_keys = list(forecasts)[:keep]
    fewer = _plan(
        spec.model_copy(update={"regions": fewer_keys}), {k: forecasts[k] for k in fewer_keys}
    )
    more = _plan(spec, forecasts)
    assert more.chosen.objective <= fewer.chosen.objective + 1e-9
