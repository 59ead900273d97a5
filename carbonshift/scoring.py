"""How a run is scored, written once for the resolver, every placement (contiguous,
interruptible, spread), the backtest, the CLI table and the artifacts: energy and its estimate,
emissions, the objective, the budget and cost-cap check, and the savings fraction.

Functions take plain values or arrays (the planner scores every row at once) and the job-spec
fields they read through `Scored`, so that the spec's module can use them without a cycle.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from carbonshift.catalog import InstanceType

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
G_PER_KG = 1000.0
KG_PER_T = 1000.0
W_PER_KW = 1000.0
S_PER_H = 3600.0


class Scored(Protocol):
    """The job-spec fields scoring reads (`JobSpec` has them)."""

    @property
    def objective(self) -> Literal["emissions", "cost"]: ...
    @property
    def carbon_price_usd_per_t(self) -> float: ...
    @property
    def carbon_budget_kg(self) -> float | None: ...
    @property
    def cost_cap_usd(self) -> float | None: ...


def energy_kwh(power_w: float, utilisation: float, pue: float, duration_s: float) -> float:
    """Board power x utilisation x PUE x hours: what `energy_estimate` spells out."""
    return power_w * utilisation * pue * (duration_s / S_PER_H) / W_PER_KW


def mean_power_w(energy_kwh: float, duration_s: float) -> float:
    """The steady draw that uses `energy_kwh` in `duration_s` (inverse of `energy_kwh`)."""
    return energy_kwh * W_PER_KW / (duration_s / S_PER_H)


def energy_estimate(
    itype: InstanceType,
    utilisation: float,
    pues: Sequence[float],
    duration_s: float,
    energy_kwh: float,
    replicas: int | None = None,
) -> str:
    """The energy figure as the explanation writes it; a spread plan names its replicas and
    every PUE its regions have."""
    per = f"{replicas} replicas x " if replicas is not None else ""
    pue = " / ".join(f"{p:.2f}" for p in sorted(set(pues)))
    return (
        f"{per}{itype.gpu_count} x {itype.gpu.model} {itype.gpu.board_power_w:.0f} W x "
        f"{utilisation:.2f} x PUE {pue} x {duration_s / S_PER_H:.2f} h = {energy_kwh:.2f} kWh"
    )


def emissions_kg(energy_kwh: npt.ArrayLike, g_per_kwh: npt.ArrayLike) -> FloatArray:
    """kg CO2 of `energy_kwh` at `g_per_kwh` (elementwise; `float()` a scalar's)."""
    return np.multiply(energy_kwh, g_per_kwh, dtype=np.float64) / G_PER_KG


def mean_g_per_kwh(emissions_kg: float, energy_kwh: float) -> float:
    """The intensity that turns `energy_kwh` into `emissions_kg` (inverse of `emissions_kg`)."""
    return emissions_kg * G_PER_KG / energy_kwh


def objective(
    emissions_kg: npt.ArrayLike,
    cost_usd: npt.ArrayLike,
    by_cost: npt.ArrayLike,
    carbon_price_usd_per_t: npt.ArrayLike,
) -> FloatArray:
    """What the planner minimises: kg CO2, or (where `by_cost`) $ plus kg x the carbon price."""
    kg = np.asarray(emissions_kg, dtype=np.float64)
    priced = np.asarray(cost_usd, dtype=np.float64) + kg / KG_PER_T * np.asarray(
        carbon_price_usd_per_t, dtype=np.float64
    )
    return np.where(by_cost, priced, kg)


def objective_of(spec: Scored, emissions_kg: npt.ArrayLike, cost_usd: npt.ArrayLike) -> FloatArray:
    """`objective` with one job's choice of objective and carbon price."""
    return objective(emissions_kg, cost_usd, spec.objective == "cost", spec.carbon_price_usd_per_t)


def limits(spec: Scored) -> tuple[float, float]:
    """The job's carbon budget (kg) and cost cap ($); infinite where it sets none."""
    budget = spec.carbon_budget_kg if spec.carbon_budget_kg is not None else np.inf
    cap = spec.cost_cap_usd if spec.cost_cap_usd is not None else np.inf
    return float(budget), float(cap)


def within_limits(
    emissions_kg: npt.ArrayLike,
    cost_usd: npt.ArrayLike,
    carbon_budget_kg: npt.ArrayLike,
    cost_cap_usd: npt.ArrayLike,
) -> BoolArray:
    """Elementwise: emits at most the budget and costs at most the cap."""
    kg_ok = np.less_equal(emissions_kg, carbon_budget_kg)
    usd_ok = np.less_equal(cost_usd, cost_cap_usd)
    return np.asarray(kg_ok & usd_ok, dtype=np.bool_)


def broken_limits(spec: Scored, emissions_kg: float, cost_usd: float) -> list[str]:
    """The limits a run of these figures breaks, named as the job file names them."""
    budget, cap = limits(spec)
    broken = []
    if not within_limits(emissions_kg, 0.0, budget, np.inf):
        broken.append(f"carbon budget {spec.carbon_budget_kg:g} kg")
    if not within_limits(0.0, cost_usd, np.inf, cap):
        broken.append(f"cost cap ${spec.cost_cap_usd:g}")
    return broken


def savings_fraction(baseline: float, value: float) -> float:
    """The share of `baseline` saved by `value` instead (kg or g/kWh); 0 for no baseline."""
    return (baseline - value) / baseline if baseline > 0 else 0.0
