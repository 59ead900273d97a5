"""Scoring, written once: the figures every planner, the CLI and the artifacts use."""

from __future__ import annotations

import numpy as np
import pytest

from carbonshift import scoring
from carbonshift.catalog import Catalog
from tests.helpers import job


@pytest.mark.parametrize(
    ("objective", "price", "expected"),
    [("emissions", 0.0, 2.0), ("cost", 0.0, 10.0), ("cost", 500.0, 10.0 + 2.0 / 1000 * 500)],
)
def test_objective_is_kg_or_dollars_with_the_carbon_price(
    objective: str, price: float, expected: float
) -> None:
    spec = job(objective=objective, carbon_price_usd_per_t=price)
    assert float(scoring.objective_of(spec, 2.0, 10.0)) == pytest.approx(expected)


def test_objective_is_elementwise_per_row() -> None:
    out = scoring.objective(
        np.array([2.0, 2.0]), np.array([10.0, 10.0]), np.array([False, True]), np.array([0, 1e3])
    )
    assert out.tolist() == [2.0, 12.0]


def test_limits_are_inclusive_and_absent_limits_never_bind() -> None:
    spec = job(carbon_budget_kg=1.0, cost_cap_usd=5.0)
    assert scoring.limits(spec) == (1.0, 5.0)
    assert scoring.limits(job()) == (np.inf, np.inf)
    assert scoring.broken_limits(spec, 1.0, 5.0) == []
    assert scoring.broken_limits(spec, 1.5, 5.0) == ["carbon budget 1 kg"]
    assert scoring.broken_limits(spec, 1.5, 6.0) == ["carbon budget 1 kg", "cost cap $5"]
    assert scoring.broken_limits(job(), 1e9, 1e9) == []
    ok = scoring.within_limits(np.array([1.0, 1.5, 1.0]), np.array([5.0, 5.0, 6.0]), 1.0, 5.0)
    assert ok.tolist() == [True, False, False]


def test_energy_and_its_text_agree(catalog: Catalog) -> None:
    itype = catalog.instance_type("g5.xlarge")
    kwh = scoring.energy_kwh(itype.power_w, 0.5, 1.2, 7200.0)
    assert kwh == pytest.approx(itype.power_w * 0.5 * 1.2 * 2 / 1000)
    assert scoring.mean_power_w(kwh, 7200.0) == pytest.approx(itype.power_w * 0.5 * 1.2)
    text = scoring.energy_estimate(itype, 0.5, [1.2], 7200.0, kwh)
    assert text == (
        f"{itype.gpu_count} x {itype.gpu.model} {itype.gpu.board_power_w:.0f} W x 0.50 x "
        f"PUE 1.20 x 2.00 h = {kwh:.2f} kWh"
    )
    spread = scoring.energy_estimate(itype, 0.5, [1.2, 1.1, 1.2], 7200.0, 3 * kwh, replicas=3)
    assert spread.startswith("3 replicas x ") and "PUE 1.10 / 1.20 x" in spread


def test_emissions_mean_and_savings() -> None:
    assert float(scoring.emissions_kg(2.0, 300.0)) == pytest.approx(0.6)
    assert scoring.emissions_kg(np.array([1.0, 2.0]), 100.0).tolist() == [0.1, 0.2]
    assert scoring.mean_g_per_kwh(0.6, 2.0) == pytest.approx(300.0)
    assert scoring.savings_fraction(4.0, 1.0) == 0.75
    assert scoring.savings_fraction(0.0, 1.0) == 0.0
    assert scoring.savings_fraction(1.0, 2.0) == -1.0  # worse than the baseline: said so
