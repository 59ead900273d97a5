"""Training job specs (pydantic, the boundary users write in YAML) and their resolution."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from carbonshift import fast_yaml, prefetch
from carbonshift.catalog import (
    PROVIDERS,
    Catalog,
    CatalogError,
    InstanceType,
    PriceQuote,
    Provider,
    Region,
)
from carbonshift.scoring import energy_kwh
from carbonshift.units import (
    DURATION_EXAMPLES,
    DURATION_HELP,
    DURATION_PATTERN,
    MAX_DURATION_S,
    format_duration,
    parse_duration_s,
    parse_utc_instant,
    to_epoch_s,
)

# Far above any carbon price in use (hundreds of USD/t); beyond it cost + emissions x price
# overflows to infinity for big jobs and the plan has no finite objective to rank on.
MAX_CARBON_PRICE_USD_PER_T = 1e6

# The shortest run planned: below it a run's end rounds onto its start on the epoch clock.
MIN_RUN_S = 1.0

# Seconds, or text like '4h' / '90min': one parser (units.parse_duration_s) serves the CLI, job
# files and flow parameters, and the JSON schema (Prefect forms, parameter checks) states its
# grammar (units.DURATION_PATTERN); a test holds the two together.
DURATION_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "number", "minimum": 0, "maximum": MAX_DURATION_S},
        {"type": "string", "pattern": DURATION_PATTERN},
    ],
    "description": DURATION_HELP,
    "examples": list(DURATION_EXAMPLES),
}
# A queue of thousands of jobs repeats a few duration texts ('4h', '12h'): each is parsed once.
# Only texts are kept (1, 1.0 and True hash alike), the first few thousand, and only when they
# parse: a bad one raises anew every time, with its message.
_PARSED_DURATIONS: dict[str, float] = {}


def _duration_s(value: object) -> float:
    if type(value) is str:
        seconds = _PARSED_DURATIONS.get(value)
        if seconds is None:
            seconds = parse_duration_s(value)
            if len(_PARSED_DURATIONS) < 4096:  # a long-lived process keeps a bounded few
                _PARSED_DURATIONS[value] = seconds
        return seconds
    return parse_duration_s(value)


DurationS = Annotated[
    float,
    BeforeValidator(_duration_s),
    Field(ge=0),
    WithJsonSchema(DURATION_SCHEMA),
]


class JobSpecError(ValueError):
    """A job spec that cannot be planned; names the job and the field to fix."""

    def __init__(self, job: str, field: str, message: str) -> None:
        self.job = job
        self.field = field
        super().__init__(f"job {job!r}: {field}: {message}")


class WorkOnInstance(BaseModel):
    """Work measured as wall-clock time on one instance type."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    duration_s: DurationS = Field(gt=0, alias="duration", description="e.g. '4h' or 14400")
    instance_type: str = Field(description="the instance type the duration was measured on")


class WorkGpuHours(BaseModel):
    """Work measured as GPU-hours on a reference GPU model."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    gpu_hours: float = Field(gt=0)
    reference_gpu: str = "A100"


def _work_kind(value: Any) -> str | None:
    """Which kind of work a mapping describes, so errors name its fields and not both kinds'."""
    if isinstance(value, WorkOnInstance):
        return "duration"
    if isinstance(value, WorkGpuHours):
        return "gpu_hours"
    if isinstance(value, dict):
        return "gpu_hours" if "gpu_hours" in value else "duration"
    return None


class JobSpec(BaseModel):
    """One training job in the queue."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=60)
    work: Annotated[
        Annotated[WorkOnInstance, Tag("duration")] | Annotated[WorkGpuHours, Tag("gpu_hours")],
        Discriminator(
            _work_kind,
            custom_error_type="work",
            custom_error_message=(
                "give {duration: 4h, instance_type: ...} or {gpu_hours: 64, reference_gpu: A100}"
            ),
        ),
    ]
    earliest_start: datetime | None = Field(
        default=None,
        description="UTC (a time without an offset is UTC); empty means when the planner runs",
    )
    deadline: datetime | None = Field(
        default=None, description="UTC time the job must end by (a time without an offset is UTC)"
    )
    within_s: DurationS | None = Field(
        default=None,
        gt=0,
        alias="within",
        description="deadline relative to the earliest start, e.g. '24h'",
    )
    regions: list[str] = Field(
        default_factory=list,
        description="candidate regions as provider:region; the first is home; empty = all",
    )
    providers: list[Provider] = Field(default_factory=lambda: list(PROVIDERS))
    instance_types: list[str] = Field(
        default_factory=list,
        description="allowed instance types; empty = the work's instance type, else all",
    )
    interruptible: bool = False
    resume_overhead_s: DurationS = Field(default=0.0, alias="resume_overhead")
    urgent: bool = False
    objective: Literal["emissions", "cost"] = Field(
        default="emissions", description="emissions, or cost + emissions x carbon price"
    )
    carbon_price_usd_per_t: float = Field(
        default=0.0,
        ge=0,
        le=MAX_CARBON_PRICE_USD_PER_T,
        description="USD per tonne CO2 for objective: cost (0 to 1e6)",
    )
    carbon_budget_kg: float | None = Field(default=None, gt=0)
    cost_cap_usd: float | None = Field(default=None, gt=0)
    utilisation: float = Field(default=1.0, gt=0, le=1, description="share of board power drawn")
    placement: Literal["colocate", "spread"] = "colocate"
    replicas: int = Field(default=1, ge=1, description="data-parallel replicas when spread")
    entrypoint: str | None = Field(
        default=None, description="training entrypoint, module:function or a command"
    )

    @model_validator(mode="before")
    @classmethod
    def _instants(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in ("earliest_start", "deadline"):
                if data.get(key) is not None:
                    try:
                        data = {**data, key: parse_utc_instant(data[key])}
                    except ValueError as e:
                        raise ValueError(f"{key}: {e}") from None
        return data

    @model_validator(mode="after")
    def _window(self) -> JobSpec:
        if self.deadline is None and self.within_s is None:
            raise ValueError("deadline: give a deadline (UTC) or 'within' (e.g. '24h')")
        if self.deadline is not None and self.within_s is not None:
            raise ValueError("deadline: give either deadline or within, not both")
        if self.earliest_start and self.deadline and self.deadline <= self.earliest_start:
            raise ValueError(
                f"deadline: {self.deadline.isoformat()} is not after earliest_start "
                f"{self.earliest_start.isoformat()}: move the deadline later"
            )
        if self.placement == "colocate" and self.replicas > 1:
            raise ValueError("replicas: more than one replica needs placement: spread")
        return self


@dataclass(frozen=True)
class Candidate:
    """One (region, instance type) a job may run on, with what running there costs."""

    region: Region
    instance_type: InstanceType
    duration_s: float
    energy_kwh: float
    cost_usd: float
    # The $/h of an interruptible job's run and where it came from (a provider's quote or the
    # catalog); None for on-demand, which is always the catalog's.
    spot_price: PriceQuote | None = None


@dataclass(frozen=True)
class ResolvedJob:
    spec: JobSpec
    earliest_s: int
    deadline_s: int
    candidates: tuple[Candidate, ...]  # the first candidate's region is home

    @property
    def home(self) -> Candidate:
        return self.candidates[0]


def resolve(spec: JobSpec, catalog: Catalog, now: datetime) -> ResolvedJob:
    """Turn a spec into concrete candidates; catalog errors name the offending field."""
    name = spec.name
    now_s = to_epoch_s(now)
    asked = to_epoch_s(spec.earliest_start) if spec.earliest_start else now_s
    deadline = to_epoch_s(spec.deadline) if spec.deadline else asked + int(spec.within_s or 0)
    # Nothing starts in the past: an earliest start before now means "as soon as possible".
    earliest = max(asked, now_s)
    if deadline <= earliest:
        raise JobSpecError(name, "deadline", "the deadline has passed: move it later")

    reference = _reference_work(spec, catalog)
    regions = _regions(spec, catalog)
    types = _instance_types(spec, catalog)
    candidates: list[Candidate] = []
    for region in regions:
        for itype in types:
            if not itype.offered_in(region):
                continue
            shard = reference / spec.replicas
            if isinstance(spec.work, WorkOnInstance) and itype.name == spec.work.instance_type:
                duration_s = spec.work.duration_s / spec.replicas  # exact, no round trip
            else:
                duration_s = round(shard / itype.throughput * 3600.0, 6)
            hours = duration_s / 3600.0
            energy = energy_kwh(
                itype.power_w, spec.utilisation, catalog.pue[region.provider], duration_s
            )
            spot = catalog.spot_price(itype.name, region.key) if spec.interruptible else None
            price = spot.usd_per_h if spot is not None else itype.on_demand_usd_per_h
            candidates.append(Candidate(region, itype, duration_s, energy, price * hours, spot))
    if not candidates:
        raise JobSpecError(
            name,
            "instance_types",
            "none of the allowed instance types is offered in the candidate "
            "regions: allow more instance types or regions",
        )
    window = deadline - earliest
    fastest = min(c.duration_s for c in candidates)
    if fastest < MIN_RUN_S:
        raise JobSpecError(
            name,
            "work",
            f"the job lasts {fastest:.3g} s on its fastest allowed instance: give at least "
            f"{MIN_RUN_S:g} s of work (e.g. duration: 1h, or more gpu_hours)",
        )
    if fastest > window:
        raise JobSpecError(
            name,
            "deadline",
            f"the job needs {format_duration(fastest)} on its fastest allowed instance but its "
            f"window is {format_duration(window)}: move the deadline later or allow faster GPUs",
        )
    # An instance type too slow to finish inside the window is no candidate: left in, it got a
    # static slot past the deadline and could win on cost (a cheap slow GPU, interruptible).
    candidates = [c for c in candidates if c.duration_s <= window]
    # Keys, not regions, compared: a catalog's keys are unique, and a string compare is far
    # cheaper than the dataclass's field-by-field __eq__ (ten thousand jobs x their candidates).
    home = regions[0].key
    candidates.sort(key=lambda c: (c.region.key != home, c.region.key))
    return ResolvedJob(spec, earliest, deadline, tuple(candidates))


def _regions(spec: JobSpec, catalog: Catalog) -> list[Region]:
    """The job's regions, each once (a region listed twice is one candidate: a spread job's
    replicas never share one), home first."""
    if not spec.regions:
        return catalog.regions_of(spec.providers)
    out: list[Region] = []
    for i, key in enumerate(spec.regions):
        try:
            region = catalog.region(key)
        except CatalogError as e:
            raise JobSpecError(spec.name, f"regions[{i}]", str(e)) from None
        if region.provider not in spec.providers:
            raise JobSpecError(
                spec.name,
                f"regions[{i}]",
                f"{key} is on {region.provider}, not in providers {spec.providers}",
            )
        if region not in out:
            out.append(region)
    return out


def _instance_types(spec: JobSpec, catalog: Catalog) -> list[InstanceType]:
    names = spec.instance_types
    if not names:
        if isinstance(spec.work, WorkOnInstance):
            names = [spec.work.instance_type]
        else:
            return [t for t in catalog.instance_types.values() if t.provider in spec.providers]
    out = []
    for i, type_name in enumerate(names):
        try:
            out.append(catalog.instance_type(type_name))
        except CatalogError as e:
            raise JobSpecError(spec.name, f"instance_types[{i}]", str(e)) from None
    return list(dict.fromkeys(out))  # each once


def _reference_work(spec: JobSpec, catalog: Catalog) -> float:
    """The job's work in reference-GPU-hours (one A100 hour = 1)."""
    work = spec.work
    if isinstance(work, WorkOnInstance):
        try:
            itype = catalog.instance_type(work.instance_type)
        except CatalogError as e:
            raise JobSpecError(spec.name, "work.instance_type", str(e)) from None
        return work.duration_s / 3600.0 * itype.throughput
    try:
        gpu = catalog.gpu(work.reference_gpu)
    except CatalogError as e:
        raise JobSpecError(spec.name, "work.reference_gpu", str(e)) from None
    return work.gpu_hours * gpu.throughput_factor


# -- job files ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobQueue:
    jobs: list[JobSpec]
    errors: list[JobSpecError]


def parse_jobs(raw: Any, origin: str = "jobs") -> JobQueue:
    """Parse a list of job mappings; a bad job is reported and the others are kept."""
    items = raw.get("jobs", raw) if isinstance(raw, dict) else raw
    if not isinstance(items, list):
        raise ValueError(f"{origin}: expected a list of jobs under 'jobs:'")
    jobs: list[JobSpec] = []
    errors: list[JobSpecError] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        label = item.get("name", f"#{i}") if isinstance(item, dict) else f"#{i}"
        try:
            job = JobSpec.model_validate(item)
        except ValidationError as e:
            errors.append(_from_validation(str(label), e))
            continue
        if job.name in seen:
            errors.append(JobSpecError(job.name, "name", "another job has this name: rename one"))
            continue
        seen.add(job.name)
        jobs.append(job)
    return JobQueue(jobs, errors)


def load_jobs(path: Path | str) -> JobQueue:
    path = Path(path)
    parsed, raw = prefetch.take(path)
    try:
        if not parsed:
            raw = fast_yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read the job file ({e})") from e
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        problem = getattr(e, "problem", None) or type(e).__name__
        raise ValueError(f"{path}: not valid YAML{at} ({problem}): fix the file") from e
    return parse_jobs(raw, str(path))


def _from_validation(job: str, error: ValidationError) -> JobSpecError:
    first = error.errors()[0]
    parts = [str(p) for p in first["loc"] if not str(p).startswith("function-")]
    if len(parts) > 2 and parts[0] == "work" and parts[1] in ("duration", "gpu_hours"):
        del parts[1]  # the union's tag: `work.duration`, not `work.duration.duration`
    loc = ".".join(parts)
    message = first["msg"].removeprefix("Value error, ")
    field, sep, rest = message.partition(": ")
    if sep and not loc and " " not in field:
        return JobSpecError(job, field, rest)
    given = first.get("input")
    if first["type"] != "value_error" and isinstance(given, str | int | float):
        shown = repr(given) if len(repr(given)) <= 40 else repr(given)[:37] + "..."
        message = f"{message}, not {shown}"
    return JobSpecError(job, loc or "job", message)
