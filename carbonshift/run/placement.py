"""Where and when a training run goes, read from its plan in one place: the run's code never
touches a Plan's optional fields, so a change to the plan's shape changes only `placement_of`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from carbonshift import scoring
from carbonshift.energy import EnergyMeter, open_meter
from carbonshift.plan import Explanation, NotRunnable, Plan, PlannedSeries, Slot, runnable

__all__ = ["NotRunnable", "Placement", "placement_of", "run_meter"]


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


def run_meter(placement: Placement, clock: Callable[[], float]) -> EnergyMeter:
    """The run's energy meter: the plan's estimate (the planned instance is not this machine,
    so RAPL here would measure the wrong hardware)."""
    label = placement.explanation.energy_estimate.split(" = ")[0]
    return open_meter(placement.power_w, clock, label, prefer_rapl=False)
