from __future__ import annotations

from datetime import timedelta

import pytest

from carbonshift.catalog import Catalog
from carbonshift.plan import FeasiblePlan, InfeasiblePlan, SpreadPlan
from carbonshift.planner import plan_jobs
from carbonshift.series import Signal, SignalMismatch
from tests.helpers import T0, job, minutes, series_at

EAST = "aws:us-east-1"
LONDON = "aws:eu-west-2"
FRANKFURT = "aws:eu-central-1"


def plan_one(catalog: Catalog, spec, forecasts, now=T0):  # type: ignore[no-untyped-def]
    (plan,) = plan_jobs([spec], forecasts, now=now, catalog=catalog)
    return plan


@pytest.mark.parametrize(
    ("values", "duration", "expected_start_min", "expected_mean"),
    [  # same answers as the Carbon Aware SDK's optimal data point on the same data
        ([10, 20, 30, 40, 5], "10m", 0, 15.0),
        ([5, 55, 10, 10, 10], "10m", 10, 10.0),  # tie 10/10: the earliest start wins
        ([12, 11, 10, 12, 13], "10m", 5, 10.5),
        ([10, 20, 30, 40], "5m", 0, 10.0),
    ],
)
def test_best_contiguous_window_matches_sdk(
    catalog: Catalog,
    values: list[float],
    duration: str,
    expected_start_min: int,
    expected_mean: float,
) -> None:
    spec = job(
        work={"duration": duration, "instance_type": "g5.xlarge"},
        deadline=T0 + minutes(5 * len(values)),
    )
    plan = plan_one(catalog, spec, {EAST: series_at(values)})
    assert isinstance(plan, FeasiblePlan), plan
    assert plan.chosen.start == T0 + minutes(expected_start_min)
    assert plan.chosen.mean_g_per_kwh == pytest.approx(expected_mean)


def test_off_grid_earliest_start_is_a_candidate(catalog: Catalog) -> None:
    # Earliest start 00:02: candidates are 00:02 itself, then 00:05, 00:10, ... (the SDK would
    # try 00:02, 00:07, ...: see docs/planner.md).
    values = [10, 100, 100, 1, 1, 100]
    spec = job(earliest_start=T0 + minutes(2), deadline=T0 + minutes(30))
    plan = plan_one(catalog, spec, {EAST: series_at(values)})
    assert plan.chosen.start == T0 + minutes(15)
    assert plan.chosen.mean_g_per_kwh == pytest.approx(1.0)
    early = job(earliest_start=T0 + minutes(2), deadline=T0 + minutes(12))
    plan = plan_one(catalog, early, {EAST: series_at(values)})
    assert plan.chosen.start == T0 + minutes(2)
    assert plan.chosen.mean_g_per_kwh == pytest.approx((3 * 10 + 7 * 100) / 10)


def test_coarse_series_upsampled_for_others_keeps_its_own_starts(catalog: Catalog) -> None:
    spec = job(
        work={"duration": "1h", "instance_type": "g5.xlarge"}, within="4h", regions=[EAST, LONDON]
    )
    forecasts = {
        EAST: series_at([50, 10, 10, 50], step_min=60),
        LONDON: series_at([90] * 48, step_min=5, zone="B"),
    }
    plan = plan_one(catalog, spec, forecasts)
    assert plan.chosen.region == EAST
    assert plan.chosen.start == T0 + timedelta(hours=1)  # not 00:30, which is not an EAST point


def test_location_chooses_the_cleanest_region(catalog: Catalog) -> None:
    spec = job(regions=[EAST, LONDON, FRANKFURT])
    forecasts = {
        EAST: series_at([300] * 12),
        LONDON: series_at([100] * 12, zone="GB"),
        FRANKFURT: series_at([200] * 12, zone="DE"),
    }
    plan = plan_one(catalog, spec, forecasts)
    assert plan.chosen.region == LONDON
    assert [s.region for s in plan.alternatives] == [LONDON, FRANKFURT, EAST]
    assert plan.explanation.runner_up.region == FRANKFURT
    assert plan.explanation.now_home.region == EAST
    assert plan.explanation.savings_fraction == pytest.approx(1 - 100 / 300)
    assert plan.forecast is not None  # what the training monitor compares actuals with
    assert plan.forecast.start == plan.chosen.start and plan.forecast.g_per_kwh == [100.0, 100.0]
    assert plan.forecast.source == "test:GB"


def test_hardware_choice_uses_throughput_and_power(catalog: Catalog) -> None:
    # 8 A100-GPU-hours: p4d (8 x A100, 400 W) runs 1 h; p5 (8 x H100, 700 W, 2x) runs 30 min.
    spec = job(work={"gpu_hours": 8}, instance_types=["p4d.24xlarge", "p5.48xlarge"], within="4h")
    plan = plan_one(catalog, spec, {EAST: series_at([100] * 48)})
    pue = catalog.pue["aws"]
    p5 = next(s for s in plan.alternatives if s.instance_type == "p5.48xlarge")
    p4d = next(s for s in plan.alternatives if s.instance_type == "p4d.24xlarge")
    assert p4d.duration_s == pytest.approx(3600)
    assert p5.duration_s == pytest.approx(1800)
    assert p4d.energy_kwh == pytest.approx(8 * 400 * pue * 1.0 / 1000)
    assert p5.energy_kwh == pytest.approx(8 * 700 * pue * 0.5 / 1000)
    assert plan.chosen.instance_type == "p5.48xlarge"  # 3.22 kWh < 3.68 kWh


def test_cost_objective_prices_carbon(catalog: Catalog) -> None:
    forecasts = {EAST: series_at([400] * 48), LONDON: series_at([50] * 48, zone="GB")}
    base = {
        "regions": [EAST, LONDON],
        "work": {"gpu_hours": 8},
        "instance_types": ["p4d.24xlarge", "p5.48xlarge"],
        "within": "4h",
        "objective": "cost",
    }
    cheap = plan_one(catalog, job(**base), forecasts)
    # p4d is cheaper per unit of work and only p5 is offered in London.
    assert cheap.chosen.instance_type == "p4d.24xlarge"
    assert cheap.chosen.region == EAST
    priced = plan_one(catalog, job(**base, carbon_price_usd_per_t=100_000), forecasts)
    assert priced.chosen.region == LONDON
    for plan in (cheap, priced):
        c = plan.chosen
        assert c.objective == pytest.approx(
            c.cost_usd + c.emissions_kg / 1000 * (0 if plan is cheap else 100_000)
        )


def test_budget_and_cap_filter_and_explain(catalog: Catalog) -> None:
    forecasts = {EAST: series_at([400] * 48)}
    ok = plan_one(catalog, job(carbon_budget_kg=1.0), forecasts)
    assert isinstance(ok, FeasiblePlan), ok
    over = plan_one(catalog, job(carbon_budget_kg=0.0001), forecasts)
    assert isinstance(over, InfeasiblePlan)
    assert "carbon budget 0.0001 kg" in over.reason
    capped = plan_one(catalog, job(cost_cap_usd=0.0001), forecasts)
    assert isinstance(capped, InfeasiblePlan) and "cost cap" in capped.reason


def test_urgent_starts_now_in_best_region_now(catalog: Catalog) -> None:
    # Over the run from now (00:01-00:11) East is cleaner, though London is cleaner later.
    forecasts = {
        EAST: series_at([10, 10, 10] + [500] * 9),
        LONDON: series_at([100, 100, 1] + [1] * 9, zone="GB"),
    }
    spec = job(urgent=True, regions=[LONDON, EAST])
    plan = plan_one(catalog, spec, forecasts, now=T0 + minutes(1))
    assert plan.chosen.start == T0 + minutes(1)
    assert plan.chosen.region == EAST
    assert plan.explanation.reason.startswith("urgent")


def test_static_default_is_0200_local(catalog: Catalog) -> None:
    spec = job(regions=["aws:eu-central-1"], within="48h")  # Frankfurt: CET in January
    plan = plan_one(catalog, spec, {})
    assert plan.chosen.source == "static"
    assert plan.chosen.start == T0 + timedelta(hours=1)  # 02:00 CET = 01:00 UTC
    later = job(regions=["aws:us-east-1"], within="48h", earliest_start=T0 + timedelta(hours=8))
    plan = plan_one(catalog, later, {}, now=T0 + timedelta(hours=8))
    assert plan.chosen.start == T0 + timedelta(days=1, hours=7)  # 02:00 EST next day
    assert "static default 02:00" in plan.explanation.reason


def test_static_default_that_misses_the_deadline_starts_at_once(catalog: Catalog) -> None:
    spec = job(regions=["aws:eu-central-1"], earliest_start=T0 + timedelta(hours=2), within="3h")
    plan = plan_one(catalog, spec, {}, now=T0 + timedelta(hours=2))
    assert plan.chosen.start == T0 + timedelta(hours=2)


def test_short_forecast_says_how_much_it_covered(catalog: Catalog) -> None:
    spec = job(within="2h")
    plan = plan_one(catalog, spec, {EAST: series_at([50, 40, 30, 20, 10, 60])})  # 30 minutes
    assert plan.chosen.start == T0 + minutes(15)
    assert plan.chosen.coverage == pytest.approx(0.25)
    assert "covered 25%" in plan.explanation.reason


def test_mixed_signals_are_refused(catalog: Catalog) -> None:
    forecasts = {EAST: series_at([1] * 12), LONDON: series_at([1] * 12, signal=Signal.MOER)}
    with pytest.raises(SignalMismatch):
        plan_jobs([job(regions=[EAST, LONDON])], forecasts, now=T0, catalog=catalog)


def test_bad_job_is_reported_and_others_planned(catalog: Catalog) -> None:
    good = job("good")
    bad = job("bad", regions=["aws:mars-1"])
    plans = plan_jobs([bad, good], {EAST: series_at([1] * 12)}, now=T0, catalog=catalog)
    assert [p.job for p in plans] == ["bad", "good"]
    assert isinstance(plans[0], InfeasiblePlan) and "regions[0]" in plans[0].reason
    assert isinstance(plans[1], FeasiblePlan)


def test_interruptible_uses_cheapest_steps(catalog: Catalog) -> None:
    values = [10, 90, 90, 10, 90, 90]
    spec = job(interruptible=True, within="30m")
    plan = plan_one(catalog, spec, {EAST: series_at(values)})
    assert plan.chosen.mean_g_per_kwh == pytest.approx(10.0)
    assert [(a - T0, b - T0) for a, b in plan.chosen.segments] == [
        (minutes(0), minutes(5)),
        (minutes(15), minutes(20)),
    ]
    with_overhead = plan_one(
        catalog,
        job(interruptible=True, within="30m", resume_overhead="5m"),
        {EAST: series_at(values)},
    )
    assert with_overhead.chosen.segments == []  # a resume would cost more than it saves
    assert with_overhead.chosen.mean_g_per_kwh == pytest.approx(50.0)


def test_spread_places_replicas_in_the_cleanest_regions(catalog: Catalog) -> None:
    forecasts = {
        EAST: series_at([300] * 12),
        LONDON: series_at([100] * 12, zone="GB"),
        FRANKFURT: series_at([50] * 6 + [200] * 6, zone="DE"),
    }
    spec = job(
        regions=[EAST, LONDON, FRANKFURT],
        placement="spread",
        replicas=2,
        work={"duration": "20m", "instance_type": "g5.xlarge"},
    )
    plan = plan_one(catalog, spec, forecasts)
    assert isinstance(plan, SpreadPlan), plan
    assert sorted(s.region for s in plan.shards) == [FRANKFURT, LONDON]
    assert all(s.start == T0 for s in plan.shards)
    assert all(s.duration_s == pytest.approx(600) for s in plan.shards)  # work split in two
