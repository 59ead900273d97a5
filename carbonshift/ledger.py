"""The run ledger: one record per run segment (a run that completed, stopped, or was rescheduled),
in the object store next to the checkpoints, for reports a team can audit.

Layout: `<store>/ledger/v1/<YYYY-MM-DD of the segment's end>/<run id>.<start>.jsonl`, each object
one JSON line (`LedgerRecord`); `<start>` is the segment's first sample (`20261128T050000.000000Z`).
The start tells apart two attempts of one flow run (a retried flow run keeps its run id, and both
attempts drew energy), while a task retry writing the same segment again rewrites the same
object. Objects named `<run id>.jsonl` (before the start was in the key) are read as well, and
rewritten where they are. One object per segment, not one shared file: concurrent runs on several
machines would race on appends to a shared object, and an object store has no append. Reading
the ledger lists a period's day folders and concatenates the lines, which is the JSON-lines file
the schema describes (`carbonshift report` also writes it out as one file).

The schema is versioned (`schema`); a reader refuses a version it does not know, naming it.
Re-planned segments of one job link to each other: `previous_run_id` names the segment that was
stopped and rescheduled into this one, `job_id` is the same across them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from carbonshift.checkpoint import ObjectStore

SCHEMA: Literal[1] = 1
FOLDER = "ledger/v1"


class DeviceEnergy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    device: str = Field(description="e.g. 'GPU 0 NVIDIA H100 80GB HBM3' or 'instance'")
    energy_kwh: float = Field(ge=0)
    measured: bool = Field(description="False: an estimate (board power x utilisation x time)")
    method: str = Field(default="", description="NVML counter, NVML power polling, RAPL, estimate")


class Counterfactual(BaseModel):
    """What the same energy profile would have emitted elsewhere or at another time."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["run-now-home", "best-in-hindsight"]
    region: str
    start: datetime
    emissions_kg: float | None = Field(
        default=None, ge=0, description="None while its actual intensity is not known yet"
    )
    pending: bool = Field(
        default=False, description="actuals were not available yet: a report completes it"
    )
    intensity_source: str = Field(default="actual", description="actual, forecast, static")
    signal: str = Field(
        default="",
        description="the intensity's kind: lca/direct figures compare with `emissions_kg`, a "
        "moer one with `marginal_emissions_kg` (the avoided-emissions estimate), never across",
    )


class EnergyStep(BaseModel):
    """One metered interval of a segment, from its start: the profile a counterfactual replays."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    offset_s: float = Field(ge=0, description="seconds after the segment started")
    duration_s: float = Field(gt=0)
    energy_kwh: float = Field(ge=0)


class Estimated(BaseModel):
    """A span of the segment whose intervals had no actual intensity, and what stood in."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: datetime
    end: datetime
    source: str = Field(description="forecast, or fallback (the run region's annual mean)")


class LedgerRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_: Literal[1] = Field(default=SCHEMA, alias="schema")
    run_id: str = Field(min_length=1)
    job: str = Field(min_length=1)
    job_id: str = Field(
        min_length=1, description="the same for every segment of one job (its first run id)"
    )
    previous_run_id: str | None = Field(
        default=None, description="the stopped segment this one resumes"
    )
    outcome: Literal["completed", "stopped", "rescheduled", "failed"]
    region: str
    instance_type: str
    spot: bool = False
    submitted_at: datetime | None = Field(default=None, description="when the job was planned")
    started_at: datetime
    ended_at: datetime
    steps_done: int = Field(default=0, ge=0)
    total_steps: int = Field(default=0, ge=0)
    energy_kwh: float = Field(ge=0)
    energy_measured: bool
    devices: list[DeviceEnergy] = Field(default_factory=list)
    pue: float = Field(default=1.0, ge=1.0)
    emissions_kg: float = Field(ge=0, description="location-based: energy x actual intensity")
    mean_g_per_kwh: float = Field(ge=0)
    signal: str = Field(description="lca or direct: the intensity's kind (never mixed in one sum)")
    intervals_on_forecast: int = Field(
        default=0, ge=0, description="of `intervals`, those charged the forecast (no actuals)"
    )
    intervals: int = Field(
        default=0,
        ge=0,
        description="metered intervals that drew energy, each charged one intensity: actual, "
        "`intervals_on_forecast` or `intervals_on_fallback`",
    )
    counterfactuals: list[Counterfactual] = Field(default_factory=list)
    avoided_marginal_kg: float | None = Field(
        default=None, description="a MOER-based avoided-emissions estimate, shown apart"
    )
    delay_s: float = Field(default=0.0, ge=0, description="start minus submission")
    cost_usd: float | None = Field(default=None, ge=0)
    stopped_reason: str | None = None
    # Optional since schema 1 (older lines read without them).
    marginal_emissions_kg: float | None = Field(
        default=None,
        ge=0,
        description="energy x MOER when the actuals were marginal: the base "
        "of `avoided_marginal_kg`, never summed with the location-based `emissions_kg`",
    )
    estimated: list[Estimated] = Field(
        default_factory=list, description="which spans used the forecast (or the fallback)"
    )
    home_region: str | None = Field(default=None, description="the job's first candidate")
    planned_at: datetime | None = Field(
        default=None, description="when this segment was planned: its run-now counterfactual start"
    )
    deadline: datetime | None = None
    candidate_regions: list[str] = Field(
        default_factory=list, description="where the best slot in hindsight was looked for"
    )
    profile: list[EnergyStep] = Field(
        default_factory=list,
        description="energy per interval: what a report replays to "
        "complete a pending counterfactual",
    )
    gpu_hours: float | None = Field(
        default=None, ge=0, description="GPUs x hours run: what embodied emissions are per"
    )
    embodied_kg: float | None = Field(
        default=None,
        ge=0,
        description="the hardware's manufacturing emissions amortised over its GPU-hours (a "
        "cited average, see docs/energy.md): shown apart, never added to `emissions_kg`",
    )
    intervals_on_fallback: int = Field(
        default=0,
        ge=0,
        description="of `intervals`, those charged the fallback: the run region's annual mean, "
        "as neither actuals nor a forecast covered them",
    )

    def key(self) -> str:
        """Where the segment lives: one object per (run id, start), in its end's day folder."""
        day = f"{self.ended_at.astimezone(UTC):%Y-%m-%d}"
        start = f"{self.started_at.astimezone(UTC):%Y%m%dT%H%M%S.%fZ}"
        return f"{FOLDER}/{day}/{self.run_id}.{start}.jsonl"

    def legacy_key(self) -> str:
        """The key before the start was in it: read, and rewritten in place, never written new."""
        return f"{FOLDER}/{self.ended_at.astimezone(UTC):%Y-%m-%d}/{self.run_id}.jsonl"

    def line(self) -> str:
        return self.model_dump_json(by_alias=True) + "\n"


class LedgerError(ValueError):
    """A ledger object that is not a record of a known schema; the message names it."""


def append(store: ObjectStore, record: LedgerRecord) -> str:
    """Write the segment's record (idempotent per segment: a retried task rewrites the same
    object; another attempt of the same flow run, starting later, gets its own); its key."""
    return rewrite(store, record.key(), record)


def rewrite(store: ObjectStore, key: str, record: LedgerRecord) -> str:
    """Write a record back where it was read from (`entries`): settling or restating an older
    record must not leave a second copy of it under today's key."""
    store.put(key, record.line().encode())
    return key


def parse(text: str, where: str) -> list[LedgerRecord]:
    records = []
    for n, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as e:
            raise LedgerError(f"{where} line {n}: not JSON ({e.msg})") from None
        version = data.get("schema") if isinstance(data, dict) else None
        if version != SCHEMA:
            raise LedgerError(
                f"{where} line {n}: ledger schema {version!r}; this carbonshift reads {SCHEMA}"
            )
        try:
            records.append(LedgerRecord.model_validate(data))
        except ValidationError as e:
            first = e.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise LedgerError(f"{where} line {n}: {loc}: {first['msg']}") from None
    return records


def _days(since: date, until: date) -> Iterator[date]:
    day = since
    while day <= until:
        yield day
        day += timedelta(days=1)


def entries(store: ObjectStore, since: datetime, until: datetime) -> list[tuple[str, LedgerRecord]]:
    """Every segment that ended in [since, until) with the key it was read from, oldest first.
    A segment (run id and start) found under both its key and its legacy one is taken once,
    from its key."""
    found: dict[tuple[str, datetime], tuple[str, LedgerRecord]] = {}
    for day in _days(since.astimezone(UTC).date(), until.astimezone(UTC).date()):
        for key in sorted(store.list(f"{FOLDER}/{day:%Y-%m-%d}")):
            if not key.endswith(".jsonl"):
                continue
            for record in parse(store.get(key).decode(), f"{store.uri}/{key}"):
                segment = (record.run_id, record.started_at)
                if segment not in found or key == record.key():
                    found[segment] = (key, record)
    return sorted(
        ((k, r) for k, r in found.values() if since <= r.ended_at < until),
        key=lambda kr: (kr[1].ended_at, kr[1].run_id, kr[1].started_at),
    )


def read(store: ObjectStore, since: datetime, until: datetime) -> list[LedgerRecord]:
    """Every segment that ended in [since, until), oldest first."""
    return [record for _, record in entries(store, since, until)]
