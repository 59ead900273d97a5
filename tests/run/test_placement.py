"""A plan becomes a placement in one place, or a domain error that says why it cannot run."""

from __future__ import annotations

from datetime import timedelta

import pytest

from carbonshift.catalog import Catalog
from carbonshift.plan import FeasiblePlan, InfeasiblePlan, Plan, SpreadPlan
from carbonshift.planner import plan_jobs
from carbonshift.run import NotRunnable, placement_of, run_meter
from tests.helpers import T0, job, series_at

LONDON = "aws:eu-west-2"


def plan(catalog: Catalog, **fields: object) -> Plan:
    spec = job("p", regions=[LONDON], **{"within": "6h", **fields})
    (found,) = plan_jobs([spec], {LONDON: series_at([300, 100] * 40, zone="GB")}, now=T0,
                         catalog=catalog)
    return found


def test_a_feasible_plan_is_placed(catalog: Catalog) -> None:
    p = plan(catalog)
    where = placement_of(p)
    assert isinstance(p, FeasiblePlan)
    assert where.job == "p" and where.slot == p.chosen and where.deadline == p.deadline
    assert where.forecast == p.forecast and where.explanation == p.explanation
    assert where.power_w == pytest.approx(where.slot.energy_kwh * 1000 / (10 / 60))


def test_an_infeasible_plan_says_why(catalog: Catalog) -> None:
    p = plan(catalog, within="1m")
    assert isinstance(p, InfeasiblePlan) and p.reason
    with pytest.raises(NotRunnable) as e:
        placement_of(p)
    assert str(e.value) == p.reason


def test_a_spread_plan_is_not_run_as_one_replica(catalog: Catalog) -> None:
    forecasts = {LONDON: series_at([100] * 24, zone="GB"),
                 "aws:eu-central-1": series_at([50] * 24, zone="DE")}
    spec = job("s", regions=list(forecasts), placement="spread", replicas=2, within="2h",
               work={"duration": "30m", "instance_type": "g5.xlarge"})
    (p,) = plan_jobs([spec], forecasts, now=T0, catalog=catalog)
    with pytest.raises(NotRunnable, match="placement: spread plans are not scheduled"):
        placement_of(p)


def test_a_spread_of_one_replica_is_its_slot(catalog: Catalog) -> None:
    forecasts = {LONDON: series_at([100] * 24, zone="GB")}
    spec = job("s", regions=list(forecasts), placement="spread", replicas=1, within="2h",
               work={"duration": "30m", "instance_type": "g5.xlarge"})
    (p,) = plan_jobs([spec], forecasts, now=T0, catalog=catalog)
    assert isinstance(p, SpreadPlan)
    where = placement_of(p)
    assert where.slot == p.shards[0] and where.deadline == p.deadline


def test_the_run_meter_is_the_plans_estimate(catalog: Catalog) -> None:
    where = placement_of(plan(catalog))
    now = [T0.timestamp()]
    meter = run_meter(where, lambda: now[0])
    now[0] += timedelta(hours=2).total_seconds()
    assert meter.label == "estimate: " + where.explanation.energy_estimate.split(" = ")[0]
    assert meter.read_j() == pytest.approx(where.power_w * 7200)
