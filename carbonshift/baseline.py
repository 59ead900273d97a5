"""The baseline study: what one job's energy profile would have emitted had it started at every
whole hour of the recorded history, in every region asked for.

Emissions of a start `t` are integrated, never averaged: each profile segment's power times the
intensity integral over the segment's own interval. The integral comes from the cumulative
integral of the step-function series (exact for it), evaluated at every start and segment edge at
once, so a year of hourly starts is one `np.interp` call per region, not a loop.

Hours of day are UTC unless asked for in each region's local time (DST included). The "usual"
slot is the median over every start hour of the home region (the first one asked for): what a
team that starts whenever it is ready emits, typically.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from carbonshift.accounting import Actuals, complete
from carbonshift.catalog import Catalog, CatalogError, Region
from carbonshift.checkpoint import ObjectStore
from carbonshift.checkpoint.store import open_store
from carbonshift.ledger import FOLDER, Counterfactual, EnergyStep, LedgerRecord, parse
from carbonshift.series import FloatArray, IntArray, IntensitySeries, Signal, common_signal
from carbonshift.traces import bundled_traces_dir, join, read_trace, traces_in
from carbonshift.units import MAX_DURATION_S, format_duration, from_epoch_s, parse_utc_instant

Clock = Literal["utc", "local"]
HOUR_S = 3600
KG_PER_W_S_G_PER_KWH = 1 / 3.6e9  # W x s x g/kWh = (W / 1000) kW x (s / 3600) h x g; / 1000 kg


class BaselineError(ValueError):
    """The study cannot be made as asked; one line naming the input and the fix."""


class Segment(BaseModel):
    """A stretch of the job at constant power."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    duration_s: float = Field(gt=0, le=MAX_DURATION_S, allow_inf_nan=False)
    power_w: float = Field(ge=0, allow_inf_nan=False)


class EnergyProfile(BaseModel):
    """The job's power over time, from its start: segments one after another."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    segments: tuple[Segment, ...] = Field(min_length=1)
    source: str = Field(default="given", description="given, or the ledger record it came from")

    @property
    def duration_s(self) -> float:
        return math.fsum(s.duration_s for s in self.segments)

    @property
    def energy_kwh(self) -> float:
        return math.fsum(s.duration_s * s.power_w for s in self.segments) / 3.6e6

    @classmethod
    def flat(cls, energy_kwh: float, duration_s: float, source: str = "given") -> EnergyProfile:
        if not (math.isfinite(energy_kwh) and energy_kwh >= 0):
            raise BaselineError(f"energy_kwh {energy_kwh!r}: give 0 or more kWh, e.g. 40")
        if not (math.isfinite(duration_s) and 0 < duration_s <= MAX_DURATION_S):
            raise BaselineError(f"duration {duration_s!r}s: give more than 0, e.g. 4h")
        power_w = energy_kwh * 3.6e6 / duration_s
        return cls(segments=(Segment(duration_s=duration_s, power_w=power_w),), source=source)

    @classmethod
    def of_record(cls, record: LedgerRecord) -> EnergyProfile:
        """The record's metered energy per interval (`profile`), a gap between intervals at
        zero power; a record without one (written before profiles were kept): its energy
        spread evenly over its run."""
        if any(step.energy_kwh > 0 for step in record.profile):
            return cls(
                segments=_segments(record.profile),
                source=f"ledger record {record.run_id} (its metered profile)",
            )
        duration_s = (record.ended_at - record.started_at).total_seconds()
        if duration_s <= 0:
            raise BaselineError(
                f"ledger record {record.run_id}: it ends at or before its start, so it has no "
                "profile: give --energy-kwh and --duration instead"
            )
        return cls.flat(record.energy_kwh, duration_s, f"ledger record {record.run_id}")


def _segments(steps: Sequence[EnergyStep]) -> tuple[Segment, ...]:
    parts: list[Segment] = []
    at_s = 0.0
    for step in sorted(steps, key=lambda x: x.offset_s):
        if step.offset_s > at_s:  # an interval not metered: nothing drawn then
            parts.append(Segment(duration_s=step.offset_s - at_s, power_w=0.0))
        parts.append(
            Segment(duration_s=step.duration_s, power_w=step.energy_kwh * 3.6e6 / step.duration_s)
        )
        at_s = max(at_s, step.offset_s + step.duration_s)
    return tuple(parts)


def profile_from(
    energy_kwh: float | None,
    duration_s: float | None,
    segments: Sequence[Segment | tuple[float, float]] | None,
) -> EnergyProfile:
    """A given profile: energy over a duration (flat), or (duration_s, power_w) segments."""
    if segments:
        if energy_kwh is not None or duration_s is not None:
            raise BaselineError(
                "give either segments or energy_kwh with a duration, not both: drop one"
            )
        parts: list[Segment] = []
        for i, part in enumerate(segments):
            try:
                parts.append(
                    part
                    if isinstance(part, Segment)
                    else Segment(duration_s=part[0], power_w=part[1])
                )
            except ValidationError as e:
                first = e.errors()[0]
                raise BaselineError(
                    f"segment {i}: {first['loc'][0]}: {first['msg']} (a segment is duration_s "
                    "> 0 and power_w >= 0)"
                ) from None
        return EnergyProfile(segments=tuple(parts))
    if energy_kwh is None or duration_s is None:
        missing = "energy_kwh (--energy-kwh)" if energy_kwh is None else "duration (--duration)"
        raise BaselineError(
            f"{missing} is missing: give energy_kwh and a duration, segments, or a ledger record"
        )
    return EnergyProfile.flat(energy_kwh, duration_s)


def find_record(store: ObjectStore, run_id: str) -> LedgerRecord:
    """The ledger record of one run, wherever its day folder is; of a flow run retried (a
    record per attempt), the latest attempt."""
    found: list[LedgerRecord] = []
    for key in store.list(FOLDER):
        name = key.rpartition("/")[2]
        if name.startswith(f"{run_id}.") and name.endswith(".jsonl"):
            found += [
                r
                for r in parse(store.get(key).decode(), f"{store.uri}/{key}")
                if r.run_id == run_id
            ]
    if not found:
        raise BaselineError(
            f"--ledger-record {run_id!r}: no such run in {store.uri}/{FOLDER}: check the run id "
            "and --store"
        )
    return max(found, key=lambda r: (r.started_at, r.ended_at))


def history(
    regions: Sequence[Region], folder: Path | None, signal: Signal | str
) -> dict[str, IntensitySeries]:
    """Each region's recorded series, keyed by region (`aws:eu-west-2`), from a trace folder."""
    where = folder or bundled_traces_dir()
    by_zone = _by_zone(where, str(signal))
    found: dict[str, IntensitySeries] = {}
    for region in regions:
        series = by_zone.get(region.em_zone)
        if series is None:
            zones = ", ".join(sorted(by_zone)) or "none"
            raise BaselineError(
                f"--region {region.key}: no trace of its zone {region.em_zone} in {where} "
                f"(zones there: {zones}): pick a region of those zones or pass --traces"
            )
        found[region.key] = series
    return found


def emissions_kg(series: IntensitySeries, profile: EnergyProfile, starts_s: IntArray) -> FloatArray:
    """The profile's emissions for each start, in kg: every segment's power x the intensity
    integral over its interval. Starts whose run the series does not cover are NaN."""
    durations = np.array([s.duration_s for s in profile.segments])
    power_w = np.array([s.power_w for s in profile.segments])
    offsets = np.concatenate([[0.0], np.cumsum(durations)])
    knots, integral = series.integral_knots()
    edges = starts_s.astype(np.float64)[:, None] + offsets[None, :]
    area = np.interp(edges, knots, integral)  # g/kWh x s, cumulative from the series' start
    out: FloatArray = np.diff(area, axis=1) @ power_w * KG_PER_W_S_G_PER_KWH
    outside = (edges[:, 0] < series.start_s) | (edges[:, -1] > series.end_s)
    out[outside] = np.nan
    return out


def hours_of_day(starts_s: IntArray, clock: Clock, timezone: str) -> IntArray:
    if clock == "utc":
        return (starts_s // HOUR_S) % 24
    local = pd.DatetimeIndex(pd.to_datetime(starts_s, unit="s", utc=True)).tz_convert(timezone)
    return np.asarray(local.hour, dtype=np.int64)


def mean_by_hour(kg: FloatArray, hours: IntArray) -> FloatArray:
    """Mean kg per hour of day (24 values); NaN for an hour with no start."""
    counts = np.bincount(hours, minlength=24)
    sums = np.bincount(hours, weights=kg, minlength=24)
    with np.errstate(invalid="ignore", divide="ignore"):
        means: FloatArray = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return means


@dataclass(frozen=True, eq=False)
class RegionStudy:
    region: str
    zone: str
    timezone: str
    emissions_kg: FloatArray  # per start, aligned with the study's starts
    by_hour_kg: FloatArray  # 24 means, NaN where no start fell in that hour

    @property
    def best_hour(self) -> int:
        return int(np.nanargmin(self.by_hour_kg))

    @property
    def worst_hour(self) -> int:
        return int(np.nanargmax(self.by_hour_kg))

    @property
    def median_kg(self) -> float:
        return float(np.median(self.emissions_kg))


@dataclass(frozen=True, eq=False)
class BaselineStudy:
    profile: EnergyProfile
    signal: str
    clock: Clock
    starts_s: IntArray  # every whole-hour start, the same in every region
    regions: list[RegionStudy]

    @property
    def home(self) -> RegionStudy:
        return self.regions[0]

    def slot(self, which: Literal["best", "worst"]) -> tuple[str, int, float]:
        """The (region, hour of day, mean kg) cell with the lowest or highest mean."""
        cells = [(r.region, h, float(r.by_hour_kg[h])) for r in self.regions for h in range(24)]
        cells = [c for c in cells if not math.isnan(c[2])]
        return (min if which == "best" else max)(cells, key=lambda c: c[2])

    def summary(self) -> dict[str, Any]:
        """The headline figures, JSON-ready."""
        best, worst = self.slot("best"), self.slot("worst")
        usual = self.home.median_kg
        return {
            "best": _cell(best),
            "worst": _cell(worst),
            "usual": {"region": self.home.region, "median_kg": usual},
            "best_vs_worst_kg": worst[2] - best[2],
            "best_vs_worst_fraction": _fraction(worst[2] - best[2], worst[2]),
            "best_vs_usual_kg": usual - best[2],
            "best_vs_usual_fraction": _fraction(usual - best[2], usual),
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "profile": {
                "energy_kwh": self.profile.energy_kwh,
                "duration_s": self.profile.duration_s,
                "segments": [s.model_dump() for s in self.profile.segments],
                "source": self.profile.source,
            },
            "signal": self.signal,
            "hours": "UTC" if self.clock == "utc" else "local time of each region",
            "first_start": from_epoch_s(int(self.starts_s[0])).isoformat(),
            "last_start": from_epoch_s(int(self.starts_s[-1])).isoformat(),
            "starts": len(self.starts_s),
            "regions": [
                {
                    "region": r.region,
                    "zone": r.zone,
                    "timezone": r.timezone if self.clock == "local" else "UTC",
                    "mean_kg_by_hour": [_finite(v) for v in r.by_hour_kg],
                    "best_hour": r.best_hour,
                    "worst_hour": r.worst_hour,
                    "median_kg": r.median_kg,
                    "min_kg": float(r.emissions_kg.min()),
                    "max_kg": float(r.emissions_kg.max()),
                }
                for r in self.regions
            ],
            "summary": self.summary(),
        }


def study(
    profile: EnergyProfile,
    regions: Sequence[Region],
    series: dict[str, IntensitySeries],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    clock: Clock = "utc",
) -> BaselineStudy:
    """Every whole-hour start whose run fits in [since, until) and in every region's history
    (the same starts everywhere, so regions are compared on the same days)."""
    if not regions:
        raise BaselineError("no region: give at least one --region, e.g. aws:eu-west-2")
    chosen = [series[r.key] for r in regions]
    signal = common_signal(chosen)
    lo = max([s.start_s for s in chosen] + ([since.timestamp()] if since else []))
    hi = min([s.end_s for s in chosen] + ([until.timestamp()] if until else []))
    first = math.ceil(lo / HOUR_S) * HOUR_S
    last = math.floor((hi - profile.duration_s) / HOUR_S) * HOUR_S
    starts: IntArray = np.arange(first, last + 1, HOUR_S, dtype=np.int64)
    if len(starts) == 0:
        raise BaselineError(
            f"the history {_span(lo, hi)} common to {', '.join(r.key for r in regions)} holds "
            f"no whole-hour start of a {format_duration(profile.duration_s)} run: widen "
            "--since/--until or pass --traces covering a longer period"
        )
    studies = []
    for region in regions:
        kg = emissions_kg(series[region.key], profile, starts)
        hours = hours_of_day(starts, clock, region.timezone)
        studies.append(
            RegionStudy(region.key, region.em_zone, region.timezone, kg, mean_by_hour(kg, hours))
        )
    return BaselineStudy(profile, str(signal), clock, starts, studies)


class StudyRequest(BaseModel):
    """What to study: the CLI's options and the flow's parameters, checked in one place."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    regions: list[str] = Field(default_factory=list, description="the first is home")
    energy_kwh: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    duration_s: float | None = Field(default=None, gt=0, le=MAX_DURATION_S)
    segments: list[Segment] | None = None
    ledger_record: str | None = Field(default=None, description="a run id in the ledger")
    store: str | None = Field(default=None, description="the ledger's store URI")
    traces: str | None = Field(default=None, description="a folder of traces (default bundled)")
    since: datetime | None = None
    until: datetime | None = None
    local_time: bool = False
    signal: Literal["lca", "direct"] = "lca"

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        """A time without an offset is UTC, as everywhere in carbonshift."""
        return None if value is None else parse_utc_instant(value)


def run(request: StudyRequest, catalog: Catalog) -> BaselineStudy:
    """The study a request asks for: its profile (given, or a ledger record's), its regions'
    recorded history, every start hour."""
    keys = list(request.regions)
    if request.ledger_record:
        if not request.store:
            raise BaselineError(
                "ledger_record (--ledger-record) needs store (--store): the ledger's store URI"
            )
        if request.energy_kwh is not None or request.duration_s is not None or request.segments:
            raise BaselineError(
                "ledger_record (--ledger-record) gives the profile: drop energy_kwh, duration "
                "and segments"
            )
        store, _ = open_store(request.store, field="store (--store)", create=False)
        record = find_record(store, request.ledger_record)
        profile = EnergyProfile.of_record(record)
        keys = keys or [record.region]
    else:
        profile = profile_from(request.energy_kwh, request.duration_s, request.segments)
    if not keys:
        raise BaselineError("regions (--region) is missing: give one or more, e.g. aws:eu-west-2")
    regions = resolve_regions(keys, catalog)
    folder = Path(request.traces) if request.traces else None
    return study(
        profile,
        regions,
        history(regions, folder, request.signal),
        since=request.since,
        until=request.until,
        clock="local" if request.local_time else "utc",
    )


def resolve_regions(keys: Sequence[str], catalog: Catalog) -> list[Region]:
    found: dict[str, Region] = {}
    for key in keys:
        region = catalog.region(key)
        found.setdefault(region.key, region)
    return list(found.values())


def _span(lo: float, hi: float) -> str:
    if hi <= lo:
        return "(none: the regions' traces do not overlap in that period)"
    return f"{from_epoch_s(lo):%Y-%m-%d %H:%M} to {from_epoch_s(hi):%Y-%m-%d %H:%M} UTC"


def _cell(cell: tuple[str, int, float]) -> dict[str, Any]:
    return {"region": cell[0], "hour": cell[1], "mean_kg": cell[2]}


def _fraction(part: float, whole: float) -> float | None:
    return part / whole if whole > 0 else None


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def hour_rows(s: BaselineStudy) -> list[dict[str, str | float | None]]:
    """The hour-of-day x region table: one row per hour, mean kg per region (JSON-ready)."""
    rows: list[dict[str, str | float | None]] = []
    for hour in range(24):
        row: dict[str, str | float | None] = {"hour": f"{hour:02d}:00"}
        for r in s.regions:
            value = _finite(r.by_hour_kg[hour])
            row[r.region] = None if value is None else round(value, 3)
        rows.append(row)
    return rows


def format_study(s: BaselineStudy) -> str:
    """The study for a terminal: what was studied, the hour x region table, the headline."""
    p = s.profile
    clock = "UTC" if s.clock == "utc" else "local time of each region"
    shape = (
        f"flat {p.segments[0].power_w:g} W"
        if len(p.segments) == 1
        else f"{len(p.segments)} segments"
    )
    lines = [
        f"{p.energy_kwh:g} kWh over {format_duration(p.duration_s)} ({shape}, {p.source}); "
        f"{s.signal} intensity",
        f"{len(s.starts_s)} hourly starts from {from_epoch_s(int(s.starts_s[0])):%Y-%m-%d %H:%M}"
        f" to {from_epoch_s(int(s.starts_s[-1])):%Y-%m-%d %H:%M} UTC",
        "",
        f"mean kg CO2 per run by start hour ({clock})",
    ]
    width = max(14, *(len(r.region) for r in s.regions))
    lines.append("hour " + "".join(f" {r.region:>{width}}" for r in s.regions))
    lines.append("-" * len(lines[-1]))
    for row in hour_rows(s):
        cells = [row[r.region] for r in s.regions]
        lines.append(
            f"{row['hour']:5s}"
            + "".join(f" {'n/a' if c is None else format(c, '.2f'):>{width}}" for c in cells)
        )
    lines.append("")
    for r in s.regions:
        lines.append(
            f"{r.region}: best {r.best_hour:02d}:00 {r.by_hour_kg[r.best_hour]:.2f} kg, "
            f"median start {r.median_kg:.2f} kg, worst {r.worst_hour:02d}:00 "
            f"{r.by_hour_kg[r.worst_hour]:.2f} kg"
        )
    lines += ["", headline(s)]
    return "\n".join(lines)


def headline(s: BaselineStudy) -> str:
    x = s.summary()
    best, worst = x["best"], x["worst"]
    clock = "UTC" if s.clock == "utc" else "local"
    return (
        f"Best slot: {best['region']} at {best['hour']:02d}:00 {clock}, {best['mean_kg']:.2f} kg "
        f"on average: {x['best_vs_worst_kg']:.2f} kg ({_percent(x['best_vs_worst_fraction'])}) "
        f"less than the worst ({worst['region']} at {worst['hour']:02d}:00, "
        f"{worst['mean_kg']:.2f} kg) and {x['best_vs_usual_kg']:.2f} kg "
        f"({_percent(x['best_vs_usual_fraction'])}) less than the usual run (the median start "
        f"in {s.home.region}, {x['usual']['median_kg']:.2f} kg)."
    )


def _percent(fraction: float | None) -> str:
    return "n/a" if fraction is None else f"{fraction:.0%}"


def markdown(s: BaselineStudy, chart_key: str | None = None) -> str:
    """The study's headline and per-region figures as markdown (the artifact's)."""
    p = s.profile
    clock = "UTC" if s.clock == "utc" else "each region's local time"
    lines = [
        "# Baseline study",
        "",
        f"{p.energy_kwh:g} kWh over {format_duration(p.duration_s)} ({p.source}), "
        f"{s.signal} intensity, started at each of {len(s.starts_s)} whole hours from "
        f"{from_epoch_s(int(s.starts_s[0])):%Y-%m-%d %H:%M} to "
        f"{from_epoch_s(int(s.starts_s[-1])):%Y-%m-%d %H:%M} UTC; hours of day in {clock}.",
        "",
        f"**{headline(s)}**",
        "",
        "| region | best hour | best kg | median start kg | worst hour | worst kg "
        "| best vs median |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in s.regions:
        best, worst = r.by_hour_kg[r.best_hour], r.by_hour_kg[r.worst_hour]
        gain = _percent(_fraction(r.median_kg - best, r.median_kg))
        lines.append(
            f"| {r.region} | {r.best_hour:02d}:00 | {best:.2f} | {r.median_kg:.2f} | "
            f"{r.worst_hour:02d}:00 | {worst:.2f} | {gain} |"
        )
    if chart_key:
        lines += ["", f"Heat-map: artifact `{chart_key}`."]
    return "\n".join(lines) + "\n"


def completed_run_now(
    records: Sequence[LedgerRecord], folder: Path, catalog: Catalog
) -> dict[str, float]:
    """Pending run-now counterfactuals completed from recorded actual intensity: each record's
    energy profile (`EnergyProfile.of_record`: its metered intervals, else flat over its run)
    started at the counterfactual's start in its region, on the traces in `folder`; by run id.
    A record whose region's trace, of the record's signal, does not cover that window stays
    pending."""
    wanted = [r for r in records if _pending_run_now(r) is not None]
    by_signal: dict[str, dict[str, IntensitySeries]] = {}
    done: dict[str, float] = {}
    for record in wanted:
        if record.signal not in (Signal.LCA.value, Signal.DIRECT.value):
            continue
        if record.signal not in by_signal:
            by_signal[record.signal] = _by_zone(folder, record.signal)
        cf = _pending_run_now(record)
        series = by_signal[record.signal].get(catalog.region(cf.region).em_zone) if cf else None
        if cf is None or series is None or record.ended_at <= record.started_at:
            continue
        start = np.array([int(cf.start.timestamp())], dtype=np.int64)
        kg = emissions_kg(series, EnergyProfile.of_record(record), start)[0]
        if not math.isnan(kg):
            done[record.run_id] = float(kg)
    return done


def completed_best_in_hindsight(
    records: Sequence[LedgerRecord], folder: Path, catalog: Catalog, now: datetime
) -> dict[str, float]:
    """Pending best-in-hindsight counterfactuals completed from recorded actual intensity, as
    the `emissions-report` flow settles them from the providers (`accounting.complete`: every
    15 minutes of the job's window in each candidate region, on the traces in `folder`); kg by
    run id. One whose window has not passed, or that a region's trace does not cover, stays
    pending; so does one of a record settled on another signal (MOER: the flow settles it on
    that signal, and traces hold average intensity). The run itself and run-now are among the
    best slot's candidates: where the ledger already knows their kg (the providers' actuals,
    which may differ from the traces), the best is never above them."""
    by_signal: dict[str, dict[str, IntensitySeries]] = {}
    done: dict[str, float] = {}
    for record in records:
        if not any(_pending(c, "best-in-hindsight") for c in record.counterfactuals):
            continue
        if record.signal not in (Signal.LCA.value, Signal.DIRECT.value) or _other_signal(record):
            continue
        if record.signal not in by_signal:
            by_signal[record.signal] = _by_zone(folder, record.signal)
        actuals = _trace_actuals(by_signal[record.signal], catalog)
        settled = complete(record, actuals, now).counterfactuals
        best = next(c for c in settled if c.kind == "best-in-hindsight")
        if not best.pending and best.emissions_kg is not None:
            known = [
                c.emissions_kg
                for c in record.counterfactuals
                if c.kind == "run-now-home" and not c.pending and c.emissions_kg is not None
            ]
            done[record.run_id] = min([best.emissions_kg, record.emissions_kg, *known])
    return done


def _other_signal(record: LedgerRecord) -> bool:
    return any(
        c.signal and c.signal != record.signal and not c.pending for c in record.counterfactuals
    )


def _trace_actuals(by_zone: dict[str, IntensitySeries], catalog: Catalog) -> Actuals:
    def actuals(region: str, start_s: float, end_s: float) -> IntensitySeries | None:
        try:
            series = by_zone.get(catalog.region(region).em_zone)
        except CatalogError:
            return None  # a region this catalog lacks: the figure stays pending
        if series is None or series.end_s <= start_s or series.start_s >= end_s:
            return None
        return series.slice(start_s, end_s)

    return actuals


def _pending(cf: Counterfactual, kind: str) -> bool:
    return cf.kind == kind and (cf.pending or cf.emissions_kg is None)


def _pending_run_now(record: LedgerRecord) -> Counterfactual | None:
    return next((cf for cf in record.counterfactuals if _pending(cf, "run-now-home")), None)


def _by_zone(folder: Path, signal: str) -> dict[str, IntensitySeries]:
    parts: dict[str, list[IntensitySeries]] = {}
    for path in traces_in(folder):
        series = read_trace(path, signal=signal)
        parts.setdefault(series.zone, []).append(series)
    return {zone: join(found) for zone, found in parts.items()}
