"""Spread plans start when a single-region plan could: an urgent spread job starts now, and a
job whose earliest start (`now`) falls between forecast points may start right then, as the
window search does for one region. Checked against a brute force over every allowed start."""

from __future__ import annotations

import itertools

import pytest

from carbonshift.catalog import Catalog
from carbonshift.plan import InfeasiblePlan, SpreadPlan
from carbonshift.planner import plan_jobs
from tests.helpers import T0, job, minutes, series_at

EAST, LONDON, FRANKFURT = "aws:us-east-1", "aws:eu-west-2", "aws:eu-central-1"
HOURLY = {
    # Hourly points on :00; the cleanest hours come later in the day.
    EAST: series_at([300, 280, 260, 90, 90, 90], step_min=60),
    LONDON: series_at([200, 190, 180, 60, 60, 60], step_min=60, zone="GB"),
    FRANKFURT: series_at([250, 240, 230, 70, 70, 70], step_min=60, zone="DE"),
}


def spread(**fields: object) -> object:
    base: dict[str, object] = {
        "regions": [EAST, LONDON, FRANKFURT],
        "placement": "spread",
        "replicas": 2,
        "work": {"duration": "4h", "instance_type": "g5.xlarge"},
    }
    base.update(fields)
    return job("s", **base)


def test_an_urgent_spread_job_starts_now(catalog: Catalog) -> None:
    (plan,) = plan_jobs([spread(urgent=True, within="6h")], HOURLY, now=T0, catalog=catalog)
    assert isinstance(plan, SpreadPlan), plan
    assert all(s.start == T0 for s in plan.shards), [s.start for s in plan.shards]
    assert plan.shards[0].start == T0


def test_an_urgent_spread_job_off_the_grid_starts_now(catalog: Catalog) -> None:
    now = T0 + minutes(30)
    spec = spread(urgent=True, within="5h", earliest_start=now)
    (plan,) = plan_jobs([spec], HOURLY, now=now, catalog=catalog)
    assert isinstance(plan, SpreadPlan), plan
    assert {s.start for s in plan.shards} == {now}


def test_a_tight_window_off_the_grid_is_feasible(catalog: Catalog) -> None:
    """4h of work in 2 shards (2h each) from 00:30 with a 2h window: only 00:30 fits."""
    now = T0 + minutes(30)
    spec = spread(within="2h", earliest_start=now)
    (plan,) = plan_jobs([spec], HOURLY, now=now, catalog=catalog)
    assert isinstance(plan, SpreadPlan), plan
    assert {s.start for s in plan.shards} == {now}


@pytest.mark.parametrize("offset_min", [0, 7, 30, 59])
@pytest.mark.parametrize("within_h", [2, 3, 4])
def test_spread_matches_a_brute_force_over_every_allowed_start(
    catalog: Catalog, offset_min: int, within_h: int
) -> None:
    now = T0 + minutes(offset_min)
    spec = spread(within=f"{within_h}h", earliest_start=now)
    (plan,) = plan_jobs([spec], HOURLY, now=now, catalog=catalog)
    duration_s = 2 * 3600.0
    deadline = now.timestamp() + within_h * 3600
    starts = [now.timestamp()] + [
        T0.timestamp() + 3600 * h for h in range(6) if T0.timestamp() + 3600 * h > now.timestamp()
    ]
    best = None
    for start in starts:
        if start + duration_s > deadline:
            continue
        # One instance type and one provider (one PUE): every shard has the same energy, so
        # the lowest total emissions is the lowest sum of the two regions' means.
        for pair in itertools.combinations(HOURLY, 2):
            if not all(HOURLY[r].covers(start, start + duration_s) for r in pair):
                continue
            total = sum(HOURLY[r].mean_over(start, start + duration_s) for r in pair)
            if best is None or total < best[0] - 1e-9:
                best = (total, start)
    if best is None:
        assert isinstance(plan, InfeasiblePlan)
        return
    assert isinstance(plan, SpreadPlan), plan
    assert plan.shards[0].start.timestamp() == best[1]
