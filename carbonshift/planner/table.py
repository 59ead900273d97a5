"""The scored rows of a planning run and the slots read from them, shared by every placement
(contiguous and interruptible in `choose`, spread in `spread`)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np
import numpy.typing as npt

from carbonshift import scoring
from carbonshift.catalog import CATALOG_SOURCE, PriceQuote
from carbonshift.job import Candidate, ResolvedJob
from carbonshift.plan import PlannedSeries, Slot, trusted_slot
from carbonshift.planner.batch import Rows, Starts
from carbonshift.planner.grid import ForecastGrid
from carbonshift.planner.interruptible import Segments
from carbonshift.series import STATIC_SOURCE, Signal
from carbonshift.units import from_epoch_s as _from_epoch_s

# A big queue's slots start and end on a few thousand distinct instants (the forecast's steps):
# each datetime is made once and shared (they are immutable), not once per slot.
from_epoch_s = lru_cache(maxsize=8192)(_from_epoch_s)

FloatArray = npt.NDArray[np.float64]
# The catalog's annual means (the static fallback) are life-cycle intensities.
STATIC_SIGNAL = Signal.LCA
# Objectives equal up to float noise (kg or $) are ties, broken by emissions.
OBJECTIVE_DECIMALS = 9
# How a spot label names a quote's source and what its region's price is (AWS may start the
# instance in any zone of the region, so the quote is the dearest zone's); an unknown source is
# named as it is.
PRICE_SOURCES = {"aws:describe_spot_price_history": ("AWS spot price history", " (dearest zone)")}


@dataclass(frozen=True)
class RowTable:
    """Every (job, candidate) row with its best start, and what it emits and costs there."""

    jobs: list[ResolvedJob]
    candidates: list[Candidate]
    rows: Rows
    starts: Starts
    static: npt.NDArray[np.bool_]
    mean_g_per_kwh: FloatArray
    energy_kwh: FloatArray
    emissions_kg: FloatArray
    cost_usd: FloatArray
    objective: FloatArray
    allowed: npt.NDArray[np.bool_]
    segments: dict[int, Segments]
    grid: ForecastGrid | None
    # One signal per job: its forecasts' signal when any of its rows has a forecast, else the
    # static fallback's. Rows on another signal (static rows next to MOER or direct forecasts)
    # are not comparable: they are reported, never ranked.
    job_signal: tuple[str, ...]
    comparable: npt.NDArray[np.bool_]

    def settled(self) -> RowTable:
        """This table with every derived column made now, once: readers forked after it (see
        `carbonshift.forks`) would each make them again."""
        _ = self._bounds, self._ranking, self.values
        return self

    def rows_of(self, j: int) -> npt.NDArray[np.int64]:
        """Job j's rows, in order."""
        return np.arange(self._bounds[j], self._bounds[j + 1], dtype=np.int64)

    @cached_property
    def _bounds(self) -> npt.NDArray[np.intp]:
        # Rows come grouped by job in job order (`evaluate` repeats each job's index over its
        # candidates): job j's rows start where the index j would be inserted. One search for
        # all jobs, not a scan of every row per job (quadratic on 10,000 jobs).
        return np.searchsorted(self.rows.job, np.arange(len(self.jobs) + 1))

    def ranked(self, j: int) -> list[int]:
        """Comparable rows of job j, allowed first, by objective; ties go to the lower emissions
        (a cost objective with a free carbon price ties every region on one instance type), then
        keep the candidate order (home first)."""
        return self._ranking[j]

    @cached_property
    def _ranking(self) -> list[list[int]]:
        # One sort of every job's rows (job first, then the keys above), not one per job: the
        # order within a job is the same, since the row index settles every tie.
        rows = np.flatnonzero(self.comparable)
        objective = np.round(self.objective[rows], OBJECTIVE_DECIMALS)
        emissions = np.round(self.emissions_kg[rows], OBJECTIVE_DECIMALS)
        job = self.rows.job[rows]
        order = rows[np.lexsort((rows, emissions, objective, ~self.allowed[rows], job))]
        bounds = np.searchsorted(job, np.arange(len(self.jobs) + 1)).tolist()
        ranked = order.tolist()
        return [ranked[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]

    @cached_property
    def values(self) -> _Values:
        """The columns a slot reads, as Python values: one conversion for all rows."""
        return _Values(
            start_s=self.starts.start_s.tolist(),
            mean_g_per_kwh=self.mean_g_per_kwh.tolist(),
            energy_kwh=self.energy_kwh.tolist(),
            emissions_kg=self.emissions_kg.tolist(),
            cost_usd=self.cost_usd.tolist(),
            objective=self.objective.tolist(),
            coverage=self.starts.coverage.tolist(),
            static=self.static.tolist(),
            region_row=self.rows.region_row.tolist(),
        )

    def signal_of(self, i: int) -> str:
        if self.static[i] or self.grid is None:
            return STATIC_SIGNAL.value
        return self.grid.signal.value


@dataclass(frozen=True)
class _Values:
    start_s: list[float]
    mean_g_per_kwh: list[float]
    energy_kwh: list[float]
    emissions_kg: list[float]
    cost_usd: list[float]
    objective: list[float]
    coverage: list[float]
    static: list[bool]
    region_row: list[int]


def planned_series(table: RowTable, i: int, chosen: Slot) -> PlannedSeries | None:
    """The chosen region's forecast points overlapping the run."""
    row = int(table.rows.region_row[i])
    if table.grid is None or row < 0 or table.static[i]:
        return None
    series = table.grid.series[row]
    first, last = series.span(chosen.start.timestamp(), chosen.end.timestamp())
    return PlannedSeries(
        start=from_epoch_s(series.start_s + first * series.step_s),
        step_s=series.step_s,
        g_per_kwh=series.g_per_kwh[first:last].tolist(),
        signal=series.signal.value,
        source=series.source,
    )


def slot_of(table: RowTable, i: int) -> Slot:
    c = table.candidates[i]
    v = table.values
    start = v.start_s[i]
    seg = table.segments.get(i)
    run_s = seg.run_s if seg else c.duration_s
    end = seg.end_s if seg else start + run_s
    static = v.static[i] or table.grid is None
    return trusted_slot(
        region=c.region.key,
        instance_type=c.instance_type.name,
        start=from_epoch_s(start),
        end=from_epoch_s(end),
        segments=[(from_epoch_s(a), from_epoch_s(b)) for a, b in seg.periods] if seg else [],
        duration_s=run_s,
        mean_g_per_kwh=v.mean_g_per_kwh[i],
        energy_kwh=v.energy_kwh[i],
        emissions_kg=v.emissions_kg[i],
        cost_usd=v.cost_usd[i],
        objective=v.objective[i],
        source=STATIC_SOURCE if static else _grid(table).series[v.region_row[i]].source,
        signal=STATIC_SIGNAL.value if static else _grid(table).signal.value,
        coverage=v.coverage[i],
        spot_price=spot_price_label(c),
    )


def _grid(table: RowTable) -> ForecastGrid:
    assert table.grid is not None  # a row with a forecast has a grid
    return table.grid


def spot_price_label(candidate: Candidate) -> str:
    """Where an interruptible candidate's $/h came from, as the plan's texts print it after
    `spot price: `; empty for on-demand."""
    quote: PriceQuote | None = candidate.spot_price
    if quote is None:
        return ""
    if quote.source == CATALOG_SOURCE:
        on_demand = candidate.instance_type.on_demand_usd_per_h
        off = f"{1 - quote.usd_per_h / on_demand:.0%} off on-demand" if on_demand > 0 else ""
        return f"{_usd_per_h(quote.usd_per_h)}, catalog estimate ({off or 'no on-demand price'})"
    name, zone = PRICE_SOURCES.get(quote.source, (quote.source, ""))
    when = "" if quote.at_s is None else f", set {from_epoch_s(quote.at_s):%Y-%m-%dT%H:%MZ}"
    return f"{_usd_per_h(quote.usd_per_h)}, {name}, {quote.region}{zone}{when}"


def _usd_per_h(usd: float) -> str:
    # Tenths of a cent hide real differences between quotes; a price below that (emulators
    # answer $0.00001) would print as zero.
    return f"${usd:.4f}/h" if usd >= 0.00005 else f"${usd:.1e}/h"


def now_home_slot(table: RowTable, j: int) -> Slot:
    """The home candidate (first region, first instance type) started at the earliest start:
    its forecast over that run, else its annual mean (life-cycle, `signal` says so)."""
    job = table.jobs[j]
    i = int(table.rows_of(j)[0])
    c = job.home
    start = job.earliest_s
    source = STATIC_SOURCE
    mean = c.region.annual_mean_g_per_kwh
    signal = STATIC_SIGNAL.value
    if table.grid is not None and table.rows.region_row[i] >= 0:
        series = table.grid.series[int(table.rows.region_row[i])]
        if series.covers(start, start + c.duration_s):
            mean = series.mean_over(start, start + c.duration_s)
            source = series.source
            signal = series.signal.value
    emissions = float(scoring.emissions_kg(c.energy_kwh, mean))
    return trusted_slot(
        region=c.region.key,
        instance_type=c.instance_type.name,
        start=from_epoch_s(start),
        end=from_epoch_s(start + c.duration_s),
        segments=[],
        duration_s=c.duration_s,
        mean_g_per_kwh=mean,
        energy_kwh=c.energy_kwh,
        emissions_kg=emissions,
        cost_usd=c.cost_usd,
        objective=float(scoring.objective_of(job.spec, emissions, c.cost_usd)),
        source=source,
        signal=signal,
        coverage=float(table.starts.coverage[i]),
        spot_price=spot_price_label(c),
    )


def savings_against(
    now_home: Slot, signal: str, emissions_kg: float
) -> tuple[float, float, bool, str]:
    """kg saved against starting now at home, its fraction, whether the two are on one signal
    (no savings are claimed across signals), and the explanation's note when they are not."""
    if now_home.signal != signal:
        note = (
            f"; no savings claimed: starting now in {now_home.region} is only known as its "
            f"{now_home.signal} annual mean, not as {signal}"
        )
        return 0.0, 0.0, False, note
    saved = now_home.emissions_kg - emissions_kg
    return saved, scoring.savings_fraction(now_home.emissions_kg, emissions_kg), True, ""
