"""What the planner returns: plans with their explanation (pydantic: plans cross process and
Prefect parameter boundaries)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


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


class Plan(BaseModel):
    model_config = ConfigDict(frozen=True)

    job: str
    feasible: bool
    reason: str = ""
    field: str = Field(default="", description="the job-spec field to fix, when the spec is bad")
    chosen: Slot | None = None
    shards: list[Slot] = Field(default_factory=list, description="spread placement: one per region")
    alternatives: list[Slot] = Field(
        default_factory=list, description="ranked (region, instance type) options, best first"
    )
    explanation: Explanation | None = None
    deadline: datetime | None = Field(default=None, description="the job's deadline, resolved")
    forecast: PlannedSeries | None = Field(
        default=None, description="the chosen region's forecast over the run (none if static)"
    )
