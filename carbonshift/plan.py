"""What the planner returns: plans with their explanation (pydantic: plans cross process and
Prefect parameter boundaries).

A plan is one of three kinds, told apart by `kind`: a feasible plan (one slot), an infeasible one
(why, and the spec field to fix when the spec is bad) and a spread plan (one slot per replica)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter


class Slot(BaseModel):
    """One way to run a job: where, on what, when, and what it is expected to emit and cost."""

    model_config = ConfigDict(frozen=True)

    region: str = Field(description="provider:region")
    instance_type: str
    start: datetime
    end: datetime
    segments: list[tuple[datetime, datetime]] = Field(
        default_factory=list, description="run periods of an interruptible plan"
    )
    duration_s: float
    mean_g_per_kwh: float = Field(description="time-weighted forecast intensity over the run")
    energy_kwh: float
    emissions_kg: float
    cost_usd: float
    objective: float = Field(description="what was minimised: kg CO2, or $ incl. carbon price")
    source: str = Field(description="forecast source, e.g. replay:..., live, cache, static")
    signal: str
    coverage: float = Field(description="share of the job's window the forecast covered")
    spot_price: str = Field(
        default="",
        description="where an interruptible run's $/h came from: a provider's quote (when, "
        "where) or the catalog's estimate; empty for on-demand (the catalog's price)",
    )


_SLOT_FIELDS = frozenset(Slot.model_fields)


def trusted_slot(
    *,
    region: str,
    instance_type: str,
    start: datetime,
    end: datetime,
    segments: list[tuple[datetime, datetime]],
    duration_s: float,
    mean_g_per_kwh: float,
    energy_kwh: float,
    emissions_kg: float,
    cost_usd: float,
    objective: float,
    source: str,
    signal: str,
    coverage: float,
    spot_price: str,
) -> Slot:
    """A Slot from values the planner made itself, unvalidated: validating the tens of thousands
    of slots of a big queue cost a tenth of `plan --json`, and model_construct is slower still.
    The numbers go through float() as validation would (an int or numpy scalar comes out a
    float), so the slot equals and dumps as the validated one."""
    slot = object.__new__(Slot)
    values = {
        "region": region,
        "instance_type": instance_type,
        "start": start,
        "end": end,
        "segments": segments,
        "duration_s": float(duration_s),
        "mean_g_per_kwh": float(mean_g_per_kwh),
        "energy_kwh": float(energy_kwh),
        "emissions_kg": float(emissions_kg),
        "cost_usd": float(cost_usd),
        "objective": float(objective),
        "source": source,
        "signal": signal,
        "coverage": float(coverage),
        "spot_price": spot_price,
    }
    # What BaseModel.model_construct sets on a model without extra fields or private attributes.
    object.__setattr__(slot, "__dict__", values)
    object.__setattr__(slot, "__pydantic_fields_set__", set(_SLOT_FIELDS))
    object.__setattr__(slot, "__pydantic_extra__", None)
    object.__setattr__(slot, "__pydantic_private__", None)
    return slot


class PlannedSeries(BaseModel):
    """The forecast the plan was made on, over the chosen run: what the monitor checks against."""

    model_config = ConfigDict(frozen=True)

    start: datetime
    step_s: int
    g_per_kwh: list[float]
    signal: str
    source: str


class Explanation(BaseModel):
    model_config = ConfigDict(frozen=True)

    reason: str
    runner_up: Slot | None
    now_home: Slot = Field(description="starting at once in the home region (first candidate)")
    savings_kg: float
    savings_fraction: float
    savings_comparable: bool = Field(
        default=True,
        description="False when the home baseline is on another signal than the plan (e.g. a "
        "life-cycle annual mean against a MOER forecast): savings are then 0, not claimed",
    )
    energy_estimate: str = Field(description="GPUs x board power x utilisation x PUE x hours")
    forecast_source: str


class FeasiblePlan(BaseModel):
    """A job planned into one slot: train-model runs this kind."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["feasible"] = "feasible"
    job: str
    chosen: Slot
    alternatives: list[Slot] = Field(
        min_length=1, description="ranked (region, instance type) options, best (chosen) first"
    )
    explanation: Explanation
    deadline: datetime = Field(description="the job's deadline, resolved")
    forecast: PlannedSeries | None = Field(
        default=None, description="the chosen region's forecast over the run (none if static)"
    )


class InfeasiblePlan(BaseModel):
    """A job that cannot be planned: no slot meets its window or limits, or its spec is bad."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["infeasible"] = "infeasible"
    job: str
    reason: str
    field: str = Field(default="", description="the job-spec field to fix, when the spec is bad")


class SpreadPlan(BaseModel):
    """Data-parallel replicas started together, one slot per replica (cleanest first); every
    figure of the explanation covers all replicas."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["spread"] = "spread"
    job: str
    shards: list[Slot] = Field(min_length=1, description="one placement per replica")
    explanation: Explanation
    deadline: datetime = Field(description="the job's deadline, resolved")
    forecast: PlannedSeries | None = Field(
        default=None, description="the first shard's forecast over the run (none if static)"
    )


def _with_kind(value: Any) -> Any:
    """Plans written before plans had a `kind` (the `plan` parameter of training runs already
    scheduled on a server) still load: the kind follows from their `feasible` and `shards`."""
    if isinstance(value, dict) and "kind" not in value and "job" in value:
        if not value.get("feasible", True):
            kind = "infeasible"
        elif value.get("shards"):
            kind = "spread"
        else:
            kind = "feasible"
        return {**value, "kind": kind}
    return value


Plan = Annotated[
    FeasiblePlan | InfeasiblePlan | SpreadPlan,
    Field(discriminator="kind"),
    BeforeValidator(_with_kind),
]
PLANS: TypeAdapter[Plan] = TypeAdapter(Plan)


class NotRunnable(ValueError):
    """The plan is not one train-model can run; the message says why."""


def runnable(plan: Plan) -> FeasiblePlan:
    """The slot train-model runs. An infeasible plan has none; a spread plan of several replicas
    is plan-only: train-model runs one process, and one replica of a data-parallel job run as if
    it were all of it would be neither the job nor the plan. A spread of one replica is its one
    slot."""
    if isinstance(plan, FeasiblePlan):
        return plan
    if isinstance(plan, InfeasiblePlan):
        raise NotRunnable(plan.reason)
    if len(plan.shards) == 1:
        return FeasiblePlan(
            job=plan.job,
            chosen=plan.shards[0],
            alternatives=plan.shards,
            explanation=plan.explanation,
            deadline=plan.deadline,
            forecast=plan.forecast,
        )
    regions = ", ".join(s.region for s in plan.shards)
    raise NotRunnable(
        f"placement: spread plans are not scheduled: train-model runs one process, not "
        f"{len(plan.shards)} data-parallel replicas ({regions}); start them yourself at "
        f"{plan.shards[0].start:%Y-%m-%d %H:%M} UTC, or use placement: colocate"
    )


def plan_record(plan: Plan) -> dict[str, Any]:
    """The plan as JSON values under every key a plan has had (`feasible`, `reason`, `field`,
    `chosen`, `shards`, `alternatives`, `explanation`, `deadline`, `forecast`), plus `kind`:
    what `carbonshift plan --json` prints, so that readers of the one plan shape keep working."""
    record: dict[str, Any] = {
        "job": plan.job,
        "feasible": not isinstance(plan, InfeasiblePlan),
        "reason": "",
        "field": "",
        "chosen": None,
        "shards": [],
        "alternatives": [],
        "explanation": None,
        "deadline": None,
        "forecast": None,
    }
    fields = plan.model_dump(mode="json")
    if isinstance(plan, SpreadPlan):
        fields["chosen"] = fields["shards"][0]
        fields["alternatives"] = fields["shards"]
    return {**record, **fields}
