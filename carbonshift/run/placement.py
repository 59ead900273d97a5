"""Where and when a training run goes, read from its plan in one place: the run's code never
touches a Plan's optional fields, so a change to the plan's shape changes only `placement_of`."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from carbonshift import scoring
from carbonshift.energy import EnergyMeter, open_meter
from carbonshift.meters.nvml import NvmlLike
from carbonshift.plan import Explanation, NotRunnable, Plan, PlannedSeries, Slot, runnable

__all__ = [
    "LOCAL_PUE",
    "NotRunnable",
    "Placement",
    "estimate_label",
    "placement_of",
    "run_meter",
]

# This machine's PUE: no facility overhead is known for it, so none is added. Its energy, the
# ledger's `pue` and the table's PUE row all state this one figure.
LOCAL_PUE = 1.0
_PUE_IN_LABEL = re.compile(r"PUE \d+(?:\.\d+)?(?: / \d+(?:\.\d+)?)*")
# The plan's hours close its estimate ("... x 0.17 h"); a run lasts what it lasts, and the
# estimate meter multiplies by the elapsed time, so the label must not state the plan's.
_HOURS_IN_LABEL = re.compile(r" x \d+(?:\.\d+)? h$")


class Placement(BaseModel):
    """One schedulable single-region run: the slot, its deadline, the forecast it was planned on
    (none when the plan fell back to a static figure) and the explanation (the home baseline)."""

    model_config = ConfigDict(frozen=True)

    job: str
    slot: Slot
    deadline: datetime
    forecast: PlannedSeries | None
    explanation: Explanation
    alternatives: list[Slot] = Field(
        default_factory=list,
        description="the plan's other (region, instance type) options, best first: where the "
        "run goes when the chosen one has no capacity",
    )

    @property
    def power_w(self) -> float:
        """The average power the plan's energy estimate implies."""
        return scoring.mean_power_w(self.slot.energy_kwh, self.slot.duration_s)


def placement_of(plan: Plan) -> Placement:
    """The placement a training run can execute, or NotRunnable saying why not (see
    `plan.runnable`: infeasible, or a spread over several replicas)."""
    feasible = runnable(plan)
    return Placement(
        job=feasible.job,
        slot=feasible.chosen,
        deadline=feasible.deadline,
        forecast=feasible.forecast,
        explanation=feasible.explanation,
        alternatives=[s for s in feasible.alternatives if s != feasible.chosen],
    )


def run_meter(
    placement: Placement,
    clock: Callable[[], float],
    *,
    plan_pue: float,
    pue: float = LOCAL_PUE,
    nvml: NvmlLike | None = None,
    environ: Mapping[str, str] | None = None,
) -> EnergyMeter:
    """A local run's energy meter: NVML for this machine's visible GPUs (their energy counters,
    else power polling), else the plan's estimate, labelled. RAPL stays opt-in (a GPU job's CPU
    packages are the small part, and a "measured" label on them would hide the boards).

    PUE is applied once, and it is this machine's `pue`: to the GPUs' energy by the NVML meter,
    and to the estimate by taking out the `plan_pue` the plan's power was worked out with (the
    planned region's provider's) and putting `pue` in. The meter states that `pue`, so the
    run's report, its ledger record and its table agree."""
    if plan_pue < 1.0 or pue < 1.0:
        raise ValueError(
            f"pue: {min(plan_pue, pue)!r} is below 1, which no data centre reaches: give >= 1"
        )
    power_w = placement.power_w / plan_pue * pue
    label = estimate_label(placement.explanation.energy_estimate, pue)
    return open_meter(power_w, clock, label, prefer_nvml=True, pue=pue, nvml=nvml, environ=environ)


def estimate_label(energy_estimate: str, pue: float) -> str:
    """The plan's energy estimate as a meter's label: the factors (boards, power, utilisation)
    with `pue` in place of the plan's PUE, and "time run" in place of the plan's hours and
    kWh, e.g. "1 x A10G 300 W x 0.90 x PUE 1.00 x time run"."""
    factors = _HOURS_IN_LABEL.sub("", energy_estimate.split(" = ")[0])
    label, found = _PUE_IN_LABEL.subn(f"PUE {pue:.2f}", factors, count=1)
    if not found:
        label = f"{factors} x PUE {pue:.2f}"
    return f"{label} x time run"
