"""A run segment settled after the fact: its integrated emissions against what would have
happened, both on ACTUAL intensity, as the ledger record a report can audit.

- run-now-home: the segment's energy profile started when it was planned (the plan's "now") in
  the home region. A rescheduled segment's "now" is its re-plan: each segment is judged on the
  choice made for it; the job's delay counts from its first submission.
- best-in-hindsight: the same profile at the best start among the candidate regions, on a grid
  of starts in [planned, deadline] (plus the run's own and the run-now start, so the best is
  never worse than either).
- A counterfactual whose actual intensity is not published yet (or not at all) is `pending`,
  with no figure; `complete` fills it in later from the record's profile.
- share of possible savings = (run-now - run) / (run-now - best); see `share_of_possible`.

Signals never share a sum: on average (lca, direct) actuals the figures are location-based; on
marginal (moer) actuals the run's location-based emissions come from its region's annual mean
(labelled `static`) and the counterfactuals give an avoided-emissions estimate beside them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import numpy as np

from carbonshift import ledger, scoring
from carbonshift.catalog import Catalog
from carbonshift.checkpoint import ObjectStore
from carbonshift.energy import J_PER_KWH, Accounting, Sample
from carbonshift.ledger import (
    Counterfactual,
    DeviceEnergy,
    EnergyStep,
    Estimated,
    LedgerRecord,
)
from carbonshift.run.placement import Placement
from carbonshift.run.supervisor import RunReport
from carbonshift.series import IntensitySeries, Signal

log = logging.getLogger("carbonshift.accounting")

# Region key, start_s, end_s -> that region's actual intensity over the span (None: unknown).
Actuals = Callable[[str, float, float], IntensitySeries | None]
Outcome = Literal["completed", "stopped", "rescheduled", "failed"]
GRID_S = 900  # candidate starts of the best slot in hindsight: every 15 minutes
# Below this a difference in kg is rounding, not a saving (a microgram of CO2).
EPS_KG = 1e-9
# Embodied emissions per GPU-hour: BLOOM's final training, 11.2 t CO2eq embodied (A100 GPUs and
# their HPE Apollo servers, amortised over their service life) over its 1,082,990 A100 GPU-hours
# (Luccioni, Viguier, Ligozat, JMLR 24(253), 2023; docs/energy.md). An average of one cluster,
# not the instance's own hardware: shown apart as an estimate, never added to the operational kg.
EMBODIED_KG_PER_GPU_HOUR = 11_200 / 1_082_990
EMBODIED_SOURCE = "Luccioni et al. 2023 (BLOOM: 11.2 t CO2eq over 1,082,990 A100 GPU-hours)"


def profile_of(samples: Sequence[Sample]) -> list[EnergyStep]:
    """The energy per metered interval, from the first sample."""
    if not samples:
        return []
    t0 = samples[0].at_s
    return [
        EnergyStep(
            offset_s=a.at_s - t0,
            duration_s=b.at_s - a.at_s,
            energy_kwh=max(b.energy_j - a.energy_j, 0.0) / J_PER_KWH,
        )
        for a, b in zip(samples, samples[1:], strict=False)
        if b.at_s > a.at_s
    ]


def length_s(profile: Sequence[EnergyStep]) -> float:
    return max((p.offset_s + p.duration_s for p in profile), default=0.0)


def replay_kg(
    profile: Sequence[EnergyStep], series: IntensitySeries, starts_s: Sequence[float]
) -> list[float | None]:
    """The profile's emissions started at each of `starts_s` on `series` (exact integral of
    the step function per interval); None where the series does not cover the run."""
    if not profile:
        return [0.0 for _ in starts_s]
    st = np.asarray(starts_s, dtype=np.float64)[:, None]
    a = np.array([p.offset_s for p in profile])[None, :]
    d = np.array([p.duration_s for p in profile])[None, :]
    kwh = np.array([p.energy_kwh for p in profile])[None, :]
    knots, integral = series.integral_knots()
    area = np.interp(st + a + d, knots, integral) - np.interp(st + a, knots, integral)
    kg = (area / d * kwh).sum(axis=1) / scoring.G_PER_KG
    covered = (st[:, 0] >= series.start_s) & (st[:, 0] + length_s(profile) <= series.end_s)
    return [float(k) if ok else None for k, ok in zip(kg, covered, strict=True)]


def _fetch(actuals: Actuals, region: str, start_s: float, end_s: float) -> IntensitySeries | None:
    try:
        return actuals(region, start_s, end_s)
    except Exception as e:  # noqa: BLE001 - a provider's failure leaves the figure pending
        log.warning("actual intensity of %s unavailable: %s", region, e)
        return None


def run_now_home(
    profile: Sequence[EnergyStep],
    home: str,
    planned_at: datetime,
    actuals: Actuals,
    now: datetime,
) -> Counterfactual:
    """The profile started at `planned_at` in `home`, on home's actual intensity; pending
    until that span has passed and its actuals are published."""
    start_s = planned_at.timestamp()
    end_s = start_s + max(length_s(profile), 1.0)
    pending = Counterfactual(kind="run-now-home", region=home, start=planned_at, pending=True)
    if now.timestamp() < end_s:
        return pending
    series = _fetch(actuals, home, start_s, end_s)
    if series is None:
        return pending
    (kg,) = replay_kg(profile, series, [start_s])
    if kg is None:
        return pending
    return pending.model_copy(
        update={"emissions_kg": kg, "pending": False, "signal": series.signal.value}
    )


def best_in_hindsight(
    profile: Sequence[EnergyStep],
    regions: Sequence[str],
    window: tuple[datetime, datetime],
    actuals: Actuals,
    now: datetime,
    also: Sequence[tuple[str, datetime]] = (),
    grid_s: int = GRID_S,
) -> Counterfactual:
    """The cleanest start of the profile among `regions` within `window` (planned, deadline),
    on actual intensity, with the `also` (region, start) pairs as candidates too. Pending
    until the window has passed and every region's actuals cover it."""
    begin_s, end_s = window[0].timestamp(), window[1].timestamp()
    run_s = max(length_s(profile), 1.0)
    last_s = max([end_s, *(s.timestamp() + run_s for _, s in also)])
    first = regions[0] if regions else (also[0][0] if also else "")
    pending = Counterfactual(kind="best-in-hindsight", region=first, start=window[0], pending=True)
    if now.timestamp() < last_s:
        return pending
    grid = np.arange(begin_s, end_s - run_s + 1e-6, grid_s, dtype=np.float64).tolist()
    best: tuple[float, str, float] | None = None
    signal = ""
    for region in dict.fromkeys([*regions, *(r for r, _ in also)]):
        starts = list(grid) + [s.timestamp() for r, s in also if r == region]
        first_s = min([begin_s, *starts])
        series = _fetch(actuals, region, first_s, last_s)
        if series is None:
            return pending
        kgs = replay_kg(profile, series, starts)
        if any(k is None for k in kgs):
            return pending  # a slot not known yet could be the best one
        signal = signal or series.signal.value
        if series.signal.value != signal:
            # Another provider answered here on another signal: kg of MOER and of life-cycle
            # intensity are not comparable, so this region is no candidate.
            log.info(
                "best in hindsight: %s is on %s, not %s: left out",
                region,
                series.signal.value,
                signal,
            )
            continue
        for start_s, kg in zip(starts, kgs, strict=True):
            assert kg is not None
            if best is None or kg < best[0] - EPS_KG:
                best = (kg, region, start_s)
    if best is None:
        return pending
    kg, region, start_s = best
    return Counterfactual(
        kind="best-in-hindsight",
        region=region,
        start=datetime.fromtimestamp(start_s, UTC),
        emissions_kg=kg,
        signal=signal,
    )


def share_of_possible(
    run_now_kg: float | None, run_kg: float, best_kg: float | None
) -> float | None:
    """(run-now - run) / (run-now - best): 1 when the run did as well as hindsight allows, 0 when
    it did no better than starting at once, negative when it did worse. None when a figure is
    pending or when nothing could be saved (best == run-now): a share of nothing is no figure.
    Above 1 only when the run's own figure used the forecast where hindsight used actuals."""
    if run_now_kg is None or best_kg is None:
        return None
    possible = run_now_kg - best_kg
    if possible <= EPS_KG:
        return None
    return (run_now_kg - run_kg) / possible


@dataclass(frozen=True)
class Figures:
    """What a record says it saved, on one signal: location-based (lca, direct) or avoided
    (moer). Every figure is None while its counterfactual is pending."""

    signal: str
    run_kg: float
    run_now_kg: float | None
    best_kg: float | None
    best: Counterfactual | None
    pending: bool
    # False when the run's figure and its counterfactuals are on different signals (one
    # region's provider gave MOER, another's life-cycle): no saving is stated then.
    comparable: bool = True

    @property
    def saved_kg(self) -> float | None:
        return None if self.run_now_kg is None else self.run_now_kg - self.run_kg

    @property
    def savings_fraction(self) -> float | None:
        if self.run_now_kg is None or self.run_now_kg <= EPS_KG:
            return None
        return (self.run_now_kg - self.run_kg) / self.run_now_kg

    @property
    def share(self) -> float | None:
        return share_of_possible(self.run_now_kg, self.run_kg, self.best_kg)

    @property
    def marginal(self) -> bool:
        return self.signal == Signal.MOER.value


def figures(record: LedgerRecord) -> Figures:
    """The record's comparison on ONE signal: the run-now counterfactual's (else the best's,
    else the run's). The run's own figure is taken on that signal (location-based, or the MOER
    figure for a marginal comparison); a counterfactual on another signal, or a run with no
    figure on it, is not compared: signals are never subtracted from one another."""
    by_kind = {c.kind: c for c in record.counterfactuals}
    now, best = by_kind.get("run-now-home"), by_kind.get("best-in-hindsight")
    first = now or best
    signal = (first.signal or record.signal) if first is not None else record.signal
    run_kg: float | None = record.emissions_kg if signal == record.signal else None
    if signal == Signal.MOER.value:
        run_kg = record.marginal_emissions_kg
    comparable = run_kg is not None

    def on_signal(c: Counterfactual | None) -> float | None:
        if c is None or not comparable or (c.signal or record.signal) != signal:
            return None
        return c.emissions_kg

    if best is not None and (best.signal or record.signal) != signal:
        comparable = False
    return Figures(
        signal=signal,
        run_kg=run_kg if run_kg is not None else record.emissions_kg,
        run_now_kg=on_signal(now),
        best_kg=on_signal(best),
        best=best,
        pending=any(c.pending for c in record.counterfactuals),
        comparable=comparable,
    )


@dataclass(frozen=True)
class Segment:
    """What one run segment did and what its plan knew, for `settle`."""

    run_id: str
    job: str
    job_id: str
    previous_run_id: str | None
    outcome: Outcome
    region: str
    instance_type: str
    spot: bool
    submitted_at: datetime  # the job's first submission
    planned_at: datetime  # this segment's plan "now"
    home_region: str
    home_signal: str  # the signal of the plan's home baseline: the fallback's
    candidate_regions: Sequence[str]
    deadline: datetime
    samples: Sequence[Sample]
    accounting: Accounting
    devices: Sequence[DeviceEnergy]
    pue: float
    planned_cost_usd_per_s: float
    annual_mean_g_per_kwh: float  # the run region's (life-cycle): location-based on moer
    gpus: int | None = None  # the instance's GPU count (None: unknown, no embodied figure)
    steps_done: int = 0
    total_steps: int = 0
    stopped_reason: str | None = None


def settle(segment: Segment, actuals: Actuals, now: datetime) -> LedgerRecord:
    """The segment's ledger record: its integrated emissions, its counterfactuals on actual
    intensity (pending where not published yet), delay and cost."""
    s, acc = segment, segment.accounting
    start_s = s.samples[0].at_s if s.samples else now.timestamp()
    end_s = s.samples[-1].at_s if s.samples else start_s
    started = datetime.fromtimestamp(start_s, UTC)
    profile = profile_of(s.samples)
    signal = acc.signal or s.home_signal
    marginal = signal == Signal.MOER.value
    run_now = run_now_home(profile, s.home_region, s.planned_at, actuals, now)
    best = best_in_hindsight(
        profile,
        s.candidate_regions,
        (s.planned_at, s.deadline),
        actuals,
        now,
        also=[(s.region, started), (s.home_region, s.planned_at)],
    )
    if marginal:
        # A MOER figure is no location-based one: that comes from the annual mean, labelled.
        emissions_kg = float(scoring.emissions_kg(acc.energy_kwh, s.annual_mean_g_per_kwh))
        mean, location_signal = s.annual_mean_g_per_kwh, Signal.LCA.value
    else:
        emissions_kg, location_signal = acc.emissions_kg, signal
        mean = acc.emissions_kg * scoring.G_PER_KG / acc.energy_kwh if acc.energy_kwh > 0 else 0.0
    gpu_hours = None if s.gpus is None else s.gpus * max(0.0, end_s - start_s) / 3600
    avoided = None
    if marginal and run_now.emissions_kg is not None:
        avoided = run_now.emissions_kg - acc.emissions_kg
    return LedgerRecord(
        run_id=s.run_id,
        job=s.job,
        job_id=s.job_id,
        previous_run_id=s.previous_run_id,
        outcome=s.outcome,
        region=s.region,
        instance_type=s.instance_type,
        spot=s.spot,
        submitted_at=s.submitted_at,
        started_at=started,
        ended_at=datetime.fromtimestamp(end_s, UTC),
        steps_done=s.steps_done,
        total_steps=s.total_steps,
        energy_kwh=acc.energy_kwh,
        energy_measured=bool(s.devices) and all(d.measured for d in s.devices),
        devices=list(s.devices),
        pue=s.pue,
        emissions_kg=emissions_kg,
        mean_g_per_kwh=mean,
        signal=location_signal,
        # The accounting's counts, as they are: one definition for the run, its record, its
        # table and the report (see energy.Accounting).
        intervals_on_forecast=acc.intervals_on_forecast,
        intervals=acc.intervals,
        counterfactuals=[run_now, best],
        avoided_marginal_kg=avoided,
        delay_s=max(0.0, start_s - s.submitted_at.timestamp()),
        cost_usd=max(0.0, s.planned_cost_usd_per_s * (end_s - start_s)),
        stopped_reason=s.stopped_reason,
        marginal_emissions_kg=acc.emissions_kg if marginal else None,
        estimated=[
            Estimated(
                start=datetime.fromtimestamp(a, UTC), end=datetime.fromtimestamp(b, UTC), source=w
            )
            for a, b, w in acc.estimated
        ],
        home_region=s.home_region,
        planned_at=s.planned_at,
        deadline=s.deadline,
        candidate_regions=list(s.candidate_regions),
        profile=profile,
        intervals_on_fallback=acc.intervals_on_fallback,
        gpu_hours=gpu_hours,
        embodied_kg=None if gpu_hours is None else gpu_hours * EMBODIED_KG_PER_GPU_HOUR,
    )


def replay_profile(record: LedgerRecord) -> list[EnergyStep] | None:
    """What a counterfactual of the record replays: its metered energy per interval; a record
    without one (written before profiles were kept): its energy spread evenly over its run.
    None when neither exists (energy but no duration): nothing can be replayed."""
    if any(step.energy_kwh > 0 for step in record.profile) or record.energy_kwh == 0:
        return list(record.profile)
    duration_s = (record.ended_at - record.started_at).total_seconds()
    if duration_s <= 0:
        return None
    return [EnergyStep(offset_s=0.0, duration_s=duration_s, energy_kwh=record.energy_kwh)]


def complete(record: LedgerRecord, actuals: Actuals, now: datetime) -> LedgerRecord:
    """The record with its pending counterfactuals worked out where actuals now exist (a report
    calls this) from `replay_profile`; a record with nothing to replay or without a plan time
    stays as it is."""
    profile = replay_profile(record)
    if (
        not any(c.pending for c in record.counterfactuals)
        or record.planned_at is None
        or profile is None
    ):
        return record
    done: list[Counterfactual] = []
    for c in record.counterfactuals:
        if not c.pending:
            done.append(c)
        elif c.kind == "run-now-home":
            done.append(run_now_home(profile, c.region, c.start, actuals, now))
        else:
            done.append(
                best_in_hindsight(
                    profile,
                    record.candidate_regions,
                    (record.planned_at, record.deadline or record.ended_at),
                    actuals,
                    now,
                    also=[
                        (record.region, record.started_at),
                        (record.home_region or record.region, record.planned_at),
                    ],
                )
            )
    update: dict[str, object] = {"counterfactuals": done}
    run_now = next((c for c in done if c.kind == "run-now-home"), None)
    if (
        record.marginal_emissions_kg is not None
        and run_now is not None
        and run_now.emissions_kg is not None
    ):
        update["avoided_marginal_kg"] = run_now.emissions_kg - record.marginal_emissions_kg
    return record.model_copy(update=update)


def outcome_of(report: RunReport, rescheduled: bool | None = None) -> Outcome:
    """The ledger's outcome of a supervised run. `rescheduled`: whether the rest was scheduled
    (None: not known yet, taken as the monitor's call to re-plan)."""
    o = report.outcome
    if o is None or report.error is not None:
        return "failed"
    if o.completed:
        return "completed"
    if report.replan and rescheduled is not False:
        return "rescheduled"
    return "stopped"


def segment_of(
    report: RunReport,
    placement: Placement,
    catalog: Catalog,
    *,
    spot: bool,
    outcome: Outcome,
    job_id: str | None = None,
    previous_run_id: str | None = None,
    submitted_at: datetime | None = None,
) -> Segment:
    """The facts `settle` needs, from the run's report and its plan. The option it ran on is
    the planned one in the region it ran in (failover may have moved it)."""
    home = placement.explanation.now_home
    options = [placement.slot, *placement.alternatives]
    slot = next((o for o in options if o.region == report.region), placement.slot)
    region = catalog.regions.get(report.region)
    instance = catalog.instance_types.get(slot.instance_type)
    pue = report.pue
    if pue is None and region is not None:
        pue = catalog.pue.get(region.provider, 1.0)
    o = report.outcome
    return Segment(
        run_id=report.run_id,
        job=report.job,
        job_id=job_id or report.run_id,
        previous_run_id=previous_run_id,
        outcome=outcome,
        region=report.region,
        instance_type=slot.instance_type,
        spot=spot,
        submitted_at=submitted_at or home.start,
        planned_at=home.start,
        home_region=home.region,
        home_signal=home.signal,
        candidate_regions=list(dict.fromkeys([home.region, *(s.region for s in options)])),
        deadline=placement.deadline,
        samples=report.samples,
        accounting=report.accounting,
        devices=report.devices,
        pue=max(1.0, pue or 1.0),
        planned_cost_usd_per_s=slot.cost_usd / slot.duration_s if slot.duration_s > 0 else 0.0,
        annual_mean_g_per_kwh=region.annual_mean_g_per_kwh if region is not None else 0.0,
        gpus=instance.gpu_count if instance is not None else None,
        steps_done=o.step if o is not None else 0,
        total_steps=o.total_steps if o is not None else 0,
        stopped_reason=None if o is None or o.completed else o.stopped_reason,
    )


def restate(
    store: ObjectStore, run_id: str, outcome: Outcome, around: datetime, days: int = 2
) -> LedgerRecord | None:
    """Rewrite a segment's recorded outcome (a re-plan that could not be scheduled makes a
    'rescheduled' segment 'stopped'), in place; the record, or None when none ended near
    `around`. A flow run retried has a record per attempt: the latest is the one re-planned."""
    found = [
        (key, r)
        for key, r in ledger.entries(
            store, around - timedelta(days=days), around + timedelta(days=1)
        )
        if r.run_id == run_id
    ]
    if not found:
        return None
    key, last = found[-1]
    record = last.model_copy(update={"outcome": outcome})
    ledger.rewrite(store, key, record)
    return record
