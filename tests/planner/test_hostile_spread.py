"""Spread plans as a suspicious reader checks them: every figure covers all replicas, the energy
text has every number in it, and the CLI and the plan artifact print the same figures."""

from __future__ import annotations

import re

import pytest

from carbonshift.artifacts import plan_markdown, plan_rows
from carbonshift.catalog import Catalog
from carbonshift.cli import format_plans
from carbonshift.plan import SpreadPlan
from carbonshift.planner import plan_jobs
from carbonshift.series import Signal
from tests.helpers import T0, job, minutes, series_at

EAST = "aws:us-east-1"
LONDON = "aws:eu-west-2"
FRANKFURT = "aws:eu-central-1"
DUBLIN = "aws:eu-west-1"


def spread_plan(catalog: Catalog, replicas: int = 3) -> SpreadPlan:
    forecasts = {
        EAST: series_at([300] * 24),
        LONDON: series_at([100] * 24, zone="GB"),
        FRANKFURT: series_at([50] * 12 + [200] * 12, zone="DE"),
        DUBLIN: series_at([150] * 24, zone="IE"),
    }
    spec = job(
        "spread-3",
        regions=[EAST, LONDON, FRANKFURT, DUBLIN],
        placement="spread",
        replicas=replicas,
        work={"duration": "30m", "instance_type": "g5.xlarge"},
        within="2h",
    )
    (plan,) = plan_jobs([spec], forecasts, now=T0, catalog=catalog)
    assert isinstance(plan, SpreadPlan), plan
    return plan


def test_spread_plan_has_deadline_and_forecast(catalog: Catalog) -> None:
    plan = spread_plan(catalog)
    assert plan.deadline == T0 + minutes(120)
    assert plan.forecast is not None
    assert plan.forecast.start <= plan.shards[0].start
    assert plan.forecast.g_per_kwh, "the monitor needs the forecast it was planned on"


@pytest.mark.parametrize("replicas", [2, 3])
def test_now_home_covers_every_replica(catalog: Catalog, replicas: int) -> None:
    plan = spread_plan(catalog, replicas)
    x = plan.explanation
    assert x is not None and len(plan.shards) == replicas
    kg = sum(s.emissions_kg for s in plan.shards)
    # Home is us-east-1 at 300 g/kWh; every replica there now would emit 300/mean times more.
    one_shard_home = plan.shards[0].energy_kwh * 300 / 1000.0
    assert x.now_home.emissions_kg == pytest.approx(one_shard_home * replicas)
    assert x.now_home.energy_kwh == pytest.approx(sum(s.energy_kwh for s in plan.shards))
    assert x.now_home.cost_usd == pytest.approx(sum(s.cost_usd for s in plan.shards))
    assert x.savings_kg == pytest.approx(x.now_home.emissions_kg - kg)
    assert x.savings_fraction == pytest.approx(1 - kg / x.now_home.emissions_kg)


def test_energy_text_has_the_pue_number(catalog: Catalog) -> None:
    plan = spread_plan(catalog)
    text = plan.explanation.energy_estimate  # type: ignore[union-attr]
    assert "PUE x" not in text
    assert f"PUE {catalog.pue['aws']:.2f} x" in text
    total = sum(s.energy_kwh for s in plan.shards)
    assert text.endswith(f"= {total:.2f} kWh")


def test_cli_and_artifact_print_the_same_figures(catalog: Catalog) -> None:
    plan = spread_plan(catalog)
    (row,) = plan_rows([plan], {})
    kg = sum(s.emissions_kg for s in plan.shards)
    assert row["expected_kg_co2"] == round(kg, 3)
    assert row["now_home_kg_co2"] == round(plan.explanation.now_home.emissions_kg, 3)  # type: ignore[union-attr]
    assert row["expected_cost_usd"] == round(sum(s.cost_usd for s in plan.shards), 2)
    line = format_plans([plan]).splitlines()[-1]
    numbers = [float(n) for n in re.findall(r"(?<![\w:.-])\d+\.\d+(?![\w.])", line)]
    # g/kWh is printed without decimals; kg, now kg and cost $ with two.
    assert numbers[:3] == [
        round(float(row["expected_kg_co2"]), 2),  # type: ignore[arg-type]
        round(float(row["now_home_kg_co2"]), 2),  # type: ignore[arg-type]
        round(float(row["expected_cost_usd"]), 2),  # type: ignore[arg-type]
    ]
    saved = 1 - kg / plan.explanation.now_home.emissions_kg  # type: ignore[union-attr]
    assert f"{saved:.0%}" in line and row["savings_pct"] == round(100 * saved, 1)


def test_markdown_labels_the_all_replica_baseline(catalog: Catalog) -> None:
    plan = spread_plan(catalog)
    text = plan_markdown(plan, None)
    assert text.count("| chosen |") == 3
    assert "| now, home region, 3 replicas |" in text


def test_spread_cost_ties_go_to_the_cleaner_regions_and_hours(catalog: Catalog) -> None:
    # Seen after the single-region fix: spread kept the candidate order on a free-carbon cost tie
    # (dirty home first) and the earliest start, though every region and hour cost the same.
    forecasts = {
        EAST: series_at([900] * 24),
        LONDON: series_at([800] * 2 + [60] * 22, zone="GB"),
        FRANKFURT: series_at([700] * 2 + [40] * 22, zone="DE"),
    }
    spec = job(
        "spread-cost",
        regions=[EAST, LONDON, FRANKFURT],
        placement="spread",
        replicas=2,
        work={"duration": "30m", "instance_type": "g5.xlarge"},
        within="2h",
        objective="cost",
        carbon_price_usd_per_t=0,
    )
    (plan,) = plan_jobs([spec], forecasts, now=T0, catalog=catalog)
    assert isinstance(plan, SpreadPlan), plan
    assert [s.region for s in plan.shards] == [FRANKFURT, LONDON]
    assert plan.shards[0].start >= T0 + minutes(10)  # after the dirty first two steps


def test_spread_claims_no_savings_against_a_home_on_another_signal(catalog: Catalog) -> None:
    # Home Stockholm has no forecast: its "now" is a life-cycle annual mean, the shards MOER.
    moer = {
        LONDON: series_at([10] * 24, zone="GB", signal=Signal.MOER),
        FRANKFURT: series_at([20] * 24, zone="DE", signal=Signal.MOER),
    }
    spec = job(
        "spread-moer",
        regions=["aws:eu-north-1", LONDON, FRANKFURT],
        placement="spread",
        replicas=2,
        work={"duration": "30m", "instance_type": "g5.xlarge"},
        within="2h",
    )
    (plan,) = plan_jobs([spec], moer, now=T0, catalog=catalog)
    assert isinstance(plan, SpreadPlan), plan
    x = plan.explanation
    assert x is not None and not x.savings_comparable
    assert x.savings_kg == 0.0 and x.savings_fraction == 0.0
    assert "no savings claimed" in x.reason
