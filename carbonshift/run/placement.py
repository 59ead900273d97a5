"""Where and when a training run goes, read from its plan in one place: the run's code never
touches a Plan's optional fields, so a change to the plan's shape changes only `placement_of`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from carbonshift.artifacts import unschedulable
from carbonshift.energy import EnergyMeter, open_meter
from carbonshift.plan import Explanation, Plan, PlannedSeries, Slot


class NotRunnable(ValueError):
    """The plan cannot be run by one training process: infeasible, spread over replicas, or
    missing what a run needs. `reason` is meant for the operator."""

    def __init__(self, job: str, reason: str) -> None:
        self.job = job
        self.reason = reason
        super().__init__(f"{job}: {reason}")


class Placement(BaseModel):
    """One schedulable single-region run: the slot, its deadline, the forecast it was planned on
    (none when the plan fell back to a static figure) and the explanation (the home baseline)."""

    model_config = ConfigDict(frozen=True)

    job: str
    slot: Slot
    deadline: datetime
    forecast: PlannedSeries | None
    explanation: Explanation

    @property
    def power_w(self) -> float:
        """The average power the plan's energy estimate implies."""
        return self.slot.energy_kwh * 1000 / (self.slot.duration_s / 3600)


def placement_of(plan: Plan) -> Placement:
    """The placement a training run can execute, or NotRunnable saying why not."""
    if not plan.feasible or plan.chosen is None:
        raise NotRunnable(plan.job, plan.reason or "the plan has no slot to run in")
    refused = unschedulable(plan)
    if refused is not None:  # never run one replica of a data-parallel plan as if it were all
        raise NotRunnable(plan.job, refused)
    if plan.deadline is None or plan.explanation is None:
        raise NotRunnable(plan.job, "the plan has no deadline or explanation: plan the job again")
    return Placement(
        job=plan.job,
        slot=plan.chosen,
        deadline=plan.deadline,
        forecast=plan.forecast,
        explanation=plan.explanation,
    )


def run_meter(placement: Placement, clock: Callable[[], float]) -> EnergyMeter:
    """The run's energy meter: the plan's estimate (the planned instance is not this machine,
    so RAPL here would measure the wrong hardware)."""
    label = placement.explanation.energy_estimate.split(" = ")[0]
    return open_meter(placement.power_w, clock, label, prefer_rapl=False)
