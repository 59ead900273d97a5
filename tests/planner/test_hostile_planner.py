"""The planner against awkward inputs: series off the hour, `now` between points, mixed signals,
free carbon with cost ties."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from carbonshift.backtest import backtest
from carbonshift.catalog import Catalog
from carbonshift.planner import plan_jobs
from carbonshift.planner.grid import ForecastGrid
from carbonshift.planner.windows import window_means, window_means_on
from carbonshift.series import IntensitySeries, Signal, SignalMismatch
from tests.helpers import T0, job, series_at

FRANKFURT = "aws:eu-central-1"
LONDON = "aws:eu-west-2"
# Two days of an hourly shape with a clean afternoon: a 4 h job can save a lot by waiting.
DAY = [400, 410, 420, 430, 420, 400, 380, 300, 200, 120, 80, 60,
       60, 80, 120, 200, 300, 380, 420, 440, 450, 440, 430, 410]  # fmt: skip
OFFSETS_S = [0, 30 * 60, 7 * 60, 7 * 60 + 13, 3599]


def _hourly(offset_s: int, zone: str = "DE") -> IntensitySeries:
    return series_at(DAY * 2, start=T0 + timedelta(seconds=offset_s), step_min=60, zone=zone)


@pytest.mark.parametrize("offset_s", OFFSETS_S)
@pytest.mark.parametrize("now_after_s", [0, 20 * 60, 61])
def test_plan_savings_do_not_depend_on_the_grid_offset(
    catalog: Catalog, offset_s: int, now_after_s: int
) -> None:
    # Seen on main: points on :30 or :07 gave "start now, 0% saved"; on :00, the clean afternoon.
    now = T0 + timedelta(seconds=offset_s + now_after_s)
    spec = job(
        work={"duration": "4h", "instance_type": "g5.xlarge"},
        earliest_start=None,
        deadline=now + timedelta(hours=28),
        regions=[FRANKFURT],
    )
    (plan,) = plan_jobs([spec], {FRANKFURT: _hourly(offset_s)}, now=now, catalog=catalog)
    assert plan.chosen is not None and plan.explanation is not None
    assert plan.chosen.start == T0 + timedelta(seconds=offset_s, hours=10)
    assert plan.chosen.mean_g_per_kwh == pytest.approx(70.0)
    assert plan.explanation.savings_fraction > 0.8


@pytest.mark.parametrize("offset_s", OFFSETS_S)
def test_backtest_savings_do_not_depend_on_the_grid_offset(offset_s: int) -> None:
    on_hour = backtest([_hourly(0)], duration_s=4 * 3600, slack_s=12 * 3600)
    shifted = backtest([_hourly(offset_s)], duration_s=4 * 3600, slack_s=12 * 3600)
    assert shifted["jobs"] == on_hour["jobs"]
    for name in ("now", "window", "interruptible"):
        assert shifted["policies"][name] == pytest.approx(on_hour["policies"][name])
    assert shifted["policies"]["window"]["savings"] > 0.2


def test_each_region_starts_on_its_own_points_whatever_the_others_offsets(
    catalog: Catalog,
) -> None:
    # London's points sit on :00, Frankfurt's on :07:13; each is tried at its own points only.
    frankfurt = _hourly(7 * 60 + 13, zone=FRANKFURT)
    london = series_at([500.0] * 48, step_min=60, zone=LONDON)
    spec = job(
        work={"duration": "4h", "instance_type": "g5.xlarge"},
        earliest_start=T0,
        deadline=T0 + timedelta(hours=30),
        regions=[LONDON, FRANKFURT],
    )
    (plan,) = plan_jobs([spec], {LONDON: london, FRANKFURT: frankfurt}, now=T0, catalog=catalog)
    assert plan.chosen is not None
    assert plan.chosen.region == FRANKFURT
    assert plan.chosen.start == T0 + timedelta(hours=10, minutes=7, seconds=13)
    assert plan.chosen.mean_g_per_kwh == pytest.approx(70.0)


def test_grid_of_offset_series_holds_each_value_exactly() -> None:
    a = series_at([1.0, 2.0, 3.0], step_min=60, zone="A")
    b = series_at([10.0, 20.0], start=T0 + timedelta(minutes=7), step_min=60, zone="B")
    grid = ForecastGrid.build([a, b])
    minutes = (grid.edges_s - int(T0.timestamp())) // 60
    assert minutes.tolist() == [0, 7, 60, 67, 120, 127, 180]
    assert np.array_equal(grid.values[0], [1, 1, 2, 2, 3, 3])
    assert np.array_equal(grid.values[1], [np.nan, 10, 10, 20, 20, np.nan], equal_nan=True)
    assert grid.starts[0].tolist() == [True, False, True, False, True, False]
    assert grid.starts[1].tolist() == [False, True, False, True, False, False]


def test_uneven_window_means_match_the_regular_ones() -> None:
    rng = np.random.default_rng(0)
    values = rng.integers(0, 500, (3, 40)).astype(float)
    edges = 300 * np.arange(41, dtype=np.int64)
    # Split every column in two uneven halves: the same step function on an uneven axis.
    fine_edges = np.unique(np.concatenate([edges, edges[:-1] + 7]))
    fine = np.repeat(values, 2, axis=1)
    for duration in (60.0, 300.0, 421.0, 3000.0):
        regular = window_means(values, 300, duration)
        uneven = window_means_on(fine, fine_edges, duration)[:, ::2]
        assert np.allclose(regular, uneven, equal_nan=True)


def test_free_carbon_cost_ties_go_to_the_cleaner_region(catalog: Catalog) -> None:
    # Seen on main: objective cost with carbon price 0 kept the first (dirtier) region on a tie.
    dirty = series_at([800.0] * 24, step_min=60, zone=LONDON)
    clean = series_at([50.0] * 24, step_min=60, zone=FRANKFURT)
    spec = job(
        work={"duration": "2h", "instance_type": "g5.xlarge"},
        deadline=T0 + timedelta(hours=12),
        regions=[LONDON, FRANKFURT],
        objective="cost",
        carbon_price_usd_per_t=0,
    )
    (plan,) = plan_jobs([spec], {LONDON: dirty, FRANKFURT: clean}, now=T0, catalog=catalog)
    assert plan.chosen is not None and plan.explanation is not None
    assert plan.chosen.cost_usd == plan.alternatives[1].cost_usd
    assert plan.chosen.region == FRANKFURT
    assert plan.explanation.runner_up is not None
    assert plan.explanation.runner_up.region == LONDON


STOCKHOLM = "aws:eu-north-1"  # annual mean 23.4 g/kWh (life-cycle) in the catalog


@pytest.mark.parametrize("signal", [Signal.MOER, Signal.DIRECT])
def test_static_fallback_is_not_ranked_against_another_signal(
    catalog: Catalog, signal: Signal
) -> None:
    # Seen on main: Stockholm (no forecast: static life-cycle annual mean, 23 g/kWh) was ranked
    # against Frankfurt's direct/MOER forecast, chosen, and labelled with that signal.
    frankfurt = series_at([300.0] * 30, step_min=60, zone=FRANKFURT, signal=signal)
    spec = job(
        work={"duration": "4h", "instance_type": "g5.xlarge"},
        within="24h",
        regions=[FRANKFURT, STOCKHOLM],
    )
    (plan,) = plan_jobs([spec], {FRANKFURT: frankfurt}, now=T0, catalog=catalog)
    assert plan.chosen is not None and plan.explanation is not None
    assert plan.chosen.region == FRANKFURT
    assert {s.region for s in plan.alternatives} == {FRANKFURT}
    assert all(s.signal == signal.value for s in plan.alternatives)
    assert plan.explanation.now_home.signal == signal.value
    assert f"not compared: {STOCKHOLM}" in plan.explanation.reason
    assert "life-cycle" in plan.explanation.reason


def test_static_fallback_ranks_against_forecasts_of_its_own_signal(catalog: Catalog) -> None:
    # The annual means are life-cycle intensities: against lca forecasts they are one signal.
    frankfurt = series_at([300.0] * 30, step_min=60, zone=FRANKFURT, signal=Signal.LCA)
    spec = job(
        work={"duration": "4h", "instance_type": "g5.xlarge"},
        within="24h",
        regions=[FRANKFURT, STOCKHOLM],
    )
    (plan,) = plan_jobs([spec], {FRANKFURT: frankfurt}, now=T0, catalog=catalog)
    assert plan.chosen is not None and plan.explanation is not None
    assert plan.chosen.region == STOCKHOLM
    assert plan.chosen.signal == "lca" and plan.chosen.source == "static"
    assert plan.explanation.savings_fraction > 0.9
    assert "not compared" not in plan.explanation.reason


def test_home_baseline_on_another_signal_claims_no_savings(catalog: Catalog) -> None:
    # Seen on main: home Stockholm has no forecast, so "now at home" was its life-cycle annual
    # mean while the plan chose on Frankfurt's MOER forecast: savings across two signals.
    frankfurt = series_at([10.0] * 30, step_min=60, zone=FRANKFURT, signal=Signal.MOER)
    spec = job(
        work={"duration": "4h", "instance_type": "g5.xlarge"},
        within="24h",
        regions=[STOCKHOLM, FRANKFURT],
    )
    (plan,) = plan_jobs([spec], {FRANKFURT: frankfurt}, now=T0, catalog=catalog)
    assert plan.chosen is not None and plan.explanation is not None
    assert plan.chosen.region == FRANKFURT
    x = plan.explanation
    assert not x.savings_comparable
    assert x.savings_kg == 0.0 and x.savings_fraction == 0.0
    assert "no savings claimed" in x.reason


def test_backtest_refuses_traces_of_different_signals() -> None:
    lca = series_at([100.0] * 48, step_min=60, zone="A")
    moer = series_at([100.0] * 48, step_min=60, zone="B", signal=Signal.MOER)
    with pytest.raises(SignalMismatch, match="cannot be compared"):
        backtest([lca, moer], duration_s=3600, slack_s=3600)


def test_table_and_markdown_claim_no_savings_across_signals(catalog: Catalog) -> None:
    # The plan said "no savings claimed" while the CLI and the plan table printed "0%".
    from carbonshift.artifacts import plan_markdown, plan_rows
    from carbonshift.cli import format_plans

    frankfurt = series_at([10.0] * 30, step_min=60, zone=FRANKFURT, signal=Signal.MOER)
    spec = job(
        work={"duration": "4h", "instance_type": "g5.xlarge"},
        within="24h",
        regions=[STOCKHOLM, FRANKFURT],
    )
    (plan,) = plan_jobs([spec], {FRANKFURT: frankfurt}, now=T0, catalog=catalog)
    (row,) = plan_rows([plan], {})
    assert row["savings_pct"] is None
    assert format_plans([plan]).splitlines()[-1].split()[-3] == "n/a"
    markdown = plan_markdown(plan, None)
    assert "savings against starting now in the home region: not claimed" in markdown
