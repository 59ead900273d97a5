"""Live spot prices in the plan: AWS's quote when it answers one, the catalog's otherwise, and
every spot price labelled with where it came from."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from carbonshift.artifacts import plan_markdown, plan_rows
from carbonshift.catalog import Catalog, PriceQuote
from carbonshift.cli import format_plans
from carbonshift.clouds.aws_spot import SOURCE
from carbonshift.job import JobSpec
from carbonshift.plan import FeasiblePlan, Plan, Slot
from carbonshift.planner import plan_jobs
from carbonshift.spot_pricing import SpotPricing, spot_candidates
from tests.helpers import T0, job, series_at

REGION = "aws:us-east-1"


def spot_job(name: str = "spot", **fields: Any) -> JobSpec:
    spec: dict[str, Any] = {
        "work": {"duration": "2h", "instance_type": "g5.xlarge"},
        "earliest_start": None,
        "within": "24h",
        "interruptible": True,
        **fields,
    }
    return job(name, **spec)


def feasible(plan: Plan) -> FeasiblePlan:
    assert isinstance(plan, FeasiblePlan), plan
    return plan


# -- the option --------------------------------------------------------------------------------


def test_spot_pricing_is_off_by_default_and_refuses_bad_ages() -> None:
    assert SpotPricing() == SpotPricing(enabled=False, max_age_s=3600)
    for bad in (0, -1, float("inf"), 91 * 86400):
        with pytest.raises(ValidationError, match="max_age_s"):
            SpotPricing(enabled=True, max_age_s=bad)
    with pytest.raises(ValidationError, match="max_age"):
        SpotPricing.model_validate({"enabled": True, "max_age": 60})  # a misspelt field


def test_only_interruptible_jobs_aws_candidates_are_asked_for(catalog: Catalog) -> None:
    now = T0
    jobs = [
        spot_job("spot", regions=["aws:us-east-1", "aws:eu-west-2", "gcp:europe-west4"],
                 providers=["aws", "gcp"], instance_types=["g5.xlarge", "g2-standard-4"]),
        job("on-demand", regions=["aws:us-west-2"]),
        spot_job("bad", regions=["aws:mars-1"]),  # refused by the planner, not asked for
    ]
    assert spot_candidates(jobs, catalog, now) == {
        "aws:us-east-1": {"g5.xlarge"},
        "aws:eu-west-2": {"g5.xlarge"},
    }


# -- labels: the catalog's figure, and a provider's quote ---------------------------------------


def test_without_quotes_spot_jobs_cost_the_catalog_figure_labelled(catalog: Catalog) -> None:
    now = T0
    on_demand, spot = job("od", within="24h"), spot_job()
    plans = [feasible(p) for p in plan_jobs([on_demand, spot], {}, now=now, catalog=catalog)]
    od, sp = plans
    g5 = catalog.instance_type("g5.xlarge")
    # on-demand: the catalog's on-demand figure, no label, the same as ever
    assert od.chosen.cost_usd == pytest.approx(g5.on_demand_usd_per_h * od.chosen.duration_s / 3600)
    assert od.chosen.spot_price == ""
    assert sp.chosen.cost_usd == pytest.approx(g5.spot_usd_per_h * 2)
    off = 1 - g5.spot_usd_per_h / g5.on_demand_usd_per_h
    assert sp.chosen.spot_price == (
        f"${g5.spot_usd_per_h:.4f}/h, catalog estimate ({off:.0%} off on-demand)"
    )
    markdown = plan_markdown(sp, None)
    assert f"Spot price: {sp.chosen.spot_price}." in markdown
    assert "Spot price" not in plan_markdown(od, None)
    rows = {r["job"]: r for r in plan_rows(plans, {})}
    assert rows["od"]["spot_price"] is None
    assert rows["spot"]["spot_price"] == sp.chosen.spot_price
    table = format_plans(plans).splitlines()
    assert table[-1].strip() == f"spot price: {sp.chosen.spot_price}"
    assert table[-2].startswith("spot ")


def test_a_quote_prices_its_pair_only_and_says_where_and_when(catalog: Catalog) -> None:
    now = T0
    at_s = now.timestamp() - 600
    priced = catalog.with_spot_quotes([PriceQuote("g5.xlarge", REGION, 0.2345, SOURCE, at_s)])
    spec = spot_job(regions=[REGION, "aws:eu-west-2"], objective="cost")
    plan = feasible(plan_jobs([spec], {}, now=now, catalog=priced)[0])
    by_region = {s.region: s for s in plan.alternatives}
    quoted, other = by_region[REGION], by_region["aws:eu-west-2"]
    assert quoted.cost_usd == pytest.approx(0.2345 * 2)
    assert quoted.spot_price == (
        "$0.2345/h, AWS spot price history, aws:us-east-1 (dearest zone), set "
        f"{datetime.fromtimestamp(at_s, UTC):%Y-%m-%dT%H:%M}Z"
    )
    assert "catalog estimate" in other.spot_price
    assert other.cost_usd == pytest.approx(catalog.instance_type("g5.xlarge").spot_usd_per_h * 2)
    # the cheaper quote wins on cost, and the now-home baseline carries its label too
    assert plan.chosen.region == REGION
    assert plan.explanation.now_home.spot_price == quoted.spot_price
    # the options table mixes sources: the markdown names each option's
    markdown = plan_markdown(plan, None)
    assert f"- chosen, {REGION}: {quoted.spot_price}\n" in markdown
    assert f"- runner-up, aws:eu-west-2: {other.spot_price}\n" in markdown


def test_gcp_spot_prices_are_the_catalog_s_labelled(catalog: Catalog) -> None:
    spec = spot_job(work={"duration": "2h", "instance_type": "g2-standard-4"},
                    regions=["gcp:europe-west4"], providers=["gcp"])
    plan = feasible(plan_jobs([spec], {}, now=T0, catalog=catalog)[0])
    assert "catalog estimate" in plan.chosen.spot_price
    assert plan.chosen.cost_usd == pytest.approx(
        catalog.spot_price("g2-standard-4", "gcp:europe-west4").usd_per_h * 2
    )


def test_old_plans_without_a_spot_label_still_load() -> None:
    slot = Slot.model_validate(
        {"region": REGION, "instance_type": "g5.xlarge", "start": T0, "end": T0,
         "duration_s": 1, "mean_g_per_kwh": 1, "energy_kwh": 1, "emissions_kg": 1,
         "cost_usd": 1, "objective": 1, "source": "static", "signal": "lca", "coverage": 1}
    )
    assert slot.spot_price == ""


# -- the property: cost = quoted $/h x hours run ----------------------------------------------


CHEAP_HOURS = [10, 90, 10, 90, 10, 90, 90, 90, 90, 90, 90, 90]


@settings(max_examples=60, deadline=None)
@example(usd_per_h=0.5, duration_min=120, overhead_min=0, values=CHEAP_HOURS, forecast=True)
@example(usd_per_h=0.5, duration_min=120, overhead_min=30, values=CHEAP_HOURS, forecast=True)
@given(
    usd_per_h=st.floats(0.001, 100, allow_nan=False),
    duration_min=st.integers(10, 240),
    overhead_min=st.integers(0, 30),
    values=st.lists(st.integers(0, 500), min_size=12, max_size=12),
    forecast=st.booleans(),
)
def test_a_spot_job_costs_its_quote_times_the_hours_it_runs(
    usd_per_h: float, duration_min: int, overhead_min: int, values: list[int], forecast: bool
) -> None:
    from carbonshift.catalog import default_catalog

    catalog = default_catalog()
    quote = PriceQuote("g5.xlarge", REGION, usd_per_h, SOURCE, T0.timestamp())
    spec = job(
        work={"duration": f"{duration_min}min", "instance_type": "g5.xlarge"},
        interruptible=True,
        resume_overhead=f"{overhead_min}min",
        within="12h",
    )
    forecasts = {REGION: series_at(values, step_min=60, zone="US")} if forecast else {}
    plan = feasible(
        plan_jobs([spec], forecasts, now=T0, catalog=catalog.with_spot_quotes([quote]))[0]
    )
    for slot in plan.alternatives:
        # hours run, from the plan's own periods (a resumed run includes its overheads)
        periods = slot.segments or [(slot.start, slot.end)]
        hours = sum((b - a).total_seconds() for a, b in periods) / 3600
        assert slot.cost_usd == pytest.approx(usd_per_h * hours, rel=1e-9, abs=1e-9)
        assert slot.spot_price.startswith(f"${usd_per_h:.4f}/h, AWS spot price history")
    if not plan.chosen.segments:
        assert plan.chosen.cost_usd == pytest.approx(usd_per_h * duration_min / 60, rel=1e-9)


def test_a_resumed_spot_run_pays_its_overheads_at_the_quoted_price(catalog: Catalog) -> None:
    quote = PriceQuote("g5.xlarge", REGION, 0.5, SOURCE, T0.timestamp())
    spec = job(work={"duration": "2h", "instance_type": "g5.xlarge"}, interruptible=True,
               resume_overhead="30min", within="12h")
    forecasts = {REGION: series_at(CHEAP_HOURS, step_min=60, zone="US")}
    plan = feasible(
        plan_jobs([spec], forecasts, now=T0, catalog=catalog.with_spot_quotes([quote]))[0]
    )
    # 1 h of work, then 30 min overhead + 30 min work, twice: 3 h run at $0.5/h
    assert len(plan.chosen.segments) == 3
    assert plan.chosen.cost_usd == pytest.approx(1.5)
