"""The emissions report over a period of the run ledger: what was emitted, what shifting saved
against running at once in the home region, what share of the possible saving that was, and how
long jobs waited; per region and per job.

Figures are per run segment (a ledger record) and add up: each segment's counterfactuals are
for its own energy. A run-now counterfactual still pending (its region's actual intensity was not
known yet) is left out of the savings and counted apart, never guessed. Signals are never mixed in
one sum: every total is per signal (lca or direct), and marginal (MOER) avoided-emissions
estimates are shown beside them, not added.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from carbonshift.accounting import Actuals, complete
from carbonshift.baseline import completed_best_in_hindsight, completed_run_now
from carbonshift.catalog import default_catalog
from carbonshift.checkpoint import ObjectStore
from carbonshift.checkpoint.store import open_store
from carbonshift.ledger import LedgerRecord, entries, rewrite
from carbonshift.units import figure, figure_decimals, format_duration, parse_utc_instant

DEFAULT_DAYS = 14
EMPTY_EXIT_CODE = 3  # `carbonshift report` when the period holds no record


class ReportError(ValueError):
    """The period or the options cannot make a report; one line naming the option and the fix."""


LOCATION_BASED = ("lca", "direct")
MAX_DAYS = 3650  # ten years: the ledger is listed one day folder at a time


def period(
    now: datetime, days: float | None, since: datetime | None, until: datetime | None
) -> tuple[datetime, datetime]:
    """[since, until): the last `days` (default 14) up to `until` (default now), or as given.
    A time without an offset is UTC."""
    now = parse_utc_instant(now)
    since = None if since is None else parse_utc_instant(since)
    until = None if until is None else parse_utc_instant(until)
    if days is not None and since is not None:
        raise ReportError("give --days or --since, not both: --days counts back from --until")
    if days is not None and not (math.isfinite(days) and 0 < days <= MAX_DAYS):
        raise ReportError(f"--days {days!r}: give more than 0 and at most {MAX_DAYS} days, e.g. 14")
    end = until or now
    start = since or end - timedelta(days=DEFAULT_DAYS if days is None else days)
    if start >= end:
        raise ReportError(
            f"--since {start.isoformat()} is not before --until {end.isoformat()}: swap them"
        )
    return start, end


@dataclass(frozen=True)
class Segment:
    """One ledger record's figures; None where a counterfactual is missing or pending."""

    record: LedgerRecord
    run_now_kg: float | None
    run_now_pending: bool
    best_kg: float | None
    run_now_completed: bool = False  # pending in the ledger, completed by this report
    best_pending: bool = False  # its best-in-hindsight waits for the window's actuals
    best_completed: bool = False  # pending in the ledger, completed by this report

    @property
    def saved_kg(self) -> float | None:
        return None if self.run_now_kg is None else self.run_now_kg - self.record.emissions_kg

    @property
    def possible_kg(self) -> float | None:
        """What the best slot in hindsight would have saved against run-now."""
        if self.run_now_kg is None or self.best_kg is None:
            return None
        return self.run_now_kg - self.best_kg


def segment(
    record: LedgerRecord, completed_kg: float | None = None, completed_best_kg: float | None = None
) -> Segment:
    """A record's figures; `completed_kg` completes its pending run-now counterfactual, and
    `completed_best_kg` its pending best in hindsight."""
    # Only counterfactuals on the record's own (location-based) signal are set against its
    # emissions: a MOER one is an avoided-emissions estimate, shown apart, never subtracted.
    found = {
        c.kind: c for c in record.counterfactuals if (c.signal or record.signal) == record.signal
    }
    now = found.get("run-now-home")
    best = found.get("best-in-hindsight")
    pending = now is not None and (now.pending or now.emissions_kg is None)
    best_pending = best is not None and (best.pending or best.emissions_kg is None)
    best_kg = None if best is None or best_pending else best.emissions_kg
    best_completed = best_pending and completed_best_kg is not None
    if best_completed:
        best_kg, best_pending = completed_best_kg, False
    if pending and completed_kg is not None:
        return Segment(
            record,
            completed_kg,
            False,
            best_kg,
            run_now_completed=True,
            best_pending=best_pending,
            best_completed=best_completed,
        )
    run_now_kg = None if now is None or pending else now.emissions_kg
    return Segment(
        record,
        run_now_kg,
        pending,
        best_kg,
        best_pending=best_pending,
        best_completed=best_completed,
    )


@dataclass(frozen=True)
class Totals:
    """The sums over a group of segments of one signal."""

    key: str
    signal: str
    segments: int
    energy_kwh: float
    measured_kwh: float
    emissions_kg: float
    compared: int  # segments with a known run-now counterfactual
    run_now_kg: float  # over the compared ones
    compared_kg: float  # what the compared ones emitted
    pending: int
    pending_kg: float  # what the segments with a pending run-now emitted
    completed: int  # pending in the ledger, completed by this report from recorded actuals
    uncompared: int  # segments with no run-now counterfactual at all
    possible_kg: float  # over segments with both counterfactuals known
    captured_kg: float  # saved, over the same segments
    avoided_marginal_kg: float | None
    delays_s: tuple[float, ...]  # per job: its earliest start in the group minus submission
    intervals: int = 0  # metered intervals that drew energy, each charged one intensity
    on_forecast: int = 0  # of them, charged the forecast (no actuals)
    on_fallback: int = 0  # charged the region's annual mean (no forecast either)
    embodied_kg: float | None = None  # over the segments that have a figure; never added
    gpu_hours: float = 0.0  # of those segments
    embodied_segments: int = 0
    possible_segments: int = 0  # segments with both counterfactuals known
    best_pending: int = 0  # segments whose best-in-hindsight is pending
    best_completed: int = 0  # best in hindsight pending in the ledger, completed by this report

    @property
    def saved_kg(self) -> float:
        return self.run_now_kg - self.compared_kg

    @property
    def saved_fraction(self) -> float | None:
        return self.saved_kg / self.run_now_kg if self.run_now_kg > 0 else None

    @property
    def share_of_possible(self) -> float | None:
        return self.captured_kg / self.possible_kg if self.possible_kg > 0 else None

    def delay(self, q: float) -> float | None:
        return float(np.percentile(self.delays_s, q)) if self.delays_s else None


def totals(key: str, signal: str, group: Sequence[Segment]) -> Totals:
    compared = [s for s in group if s.run_now_kg is not None]
    both = [s for s in group if s.possible_kg is not None]
    marginal = [s.record.avoided_marginal_kg for s in group]
    embodied = [s.record for s in group if s.record.embodied_kg is not None]
    first_delay: dict[str, float] = {}
    for s in group:
        job = s.record.job_id
        first_delay[job] = min(first_delay.get(job, math.inf), s.record.delay_s)
    return Totals(
        key=key,
        signal=signal,
        segments=len(group),
        energy_kwh=math.fsum(s.record.energy_kwh for s in group),
        measured_kwh=math.fsum(s.record.energy_kwh for s in group if s.record.energy_measured),
        emissions_kg=math.fsum(s.record.emissions_kg for s in group),
        compared=len(compared),
        run_now_kg=math.fsum(s.run_now_kg or 0.0 for s in compared),
        compared_kg=math.fsum(s.record.emissions_kg for s in compared),
        pending=sum(s.run_now_pending for s in group),
        pending_kg=math.fsum(s.record.emissions_kg for s in group if s.run_now_pending),
        completed=sum(s.run_now_completed for s in group),
        uncompared=sum(s.run_now_kg is None and not s.run_now_pending for s in group),
        possible_kg=math.fsum(s.possible_kg or 0.0 for s in both),
        captured_kg=math.fsum(s.saved_kg or 0.0 for s in both),
        avoided_marginal_kg=None
        if all(m is None for m in marginal)
        else math.fsum(m for m in marginal if m is not None),
        delays_s=tuple(first_delay.values()),
        intervals=sum(s.record.intervals for s in group),
        on_forecast=sum(s.record.intervals_on_forecast for s in group),
        on_fallback=sum(s.record.intervals_on_fallback for s in group),
        embodied_kg=None if not embodied else math.fsum(r.embodied_kg or 0.0 for r in embodied),
        gpu_hours=math.fsum(r.gpu_hours or 0.0 for r in embodied),
        embodied_segments=len(embodied),
        possible_segments=len(both),
        best_pending=sum(s.best_pending for s in group),
        best_completed=sum(s.best_completed for s in group),
    )


@dataclass(frozen=True)
class Report:
    since: datetime
    until: datetime
    ledger: str  # the store's URI
    segments: list[Segment]
    actuals: str = ""  # the traces pending counterfactuals were completed from

    @property
    def empty(self) -> bool:
        return not self.segments

    def by(self, key: Callable[[LedgerRecord], str]) -> list[Totals]:
        """Totals per (key, signal), sorted by key then signal."""
        groups: dict[tuple[str, str], list[Segment]] = {}
        for s in self.segments:
            groups.setdefault((key(s.record), s.record.signal), []).append(s)
        return [totals(k, sig, g) for (k, sig), g in sorted(groups.items())]

    def overall(self) -> list[Totals]:
        return self.by(lambda r: "all")

    def by_region(self) -> list[Totals]:
        return self.by(lambda r: r.region)

    def by_job(self) -> list[Totals]:
        return self.by(lambda r: r.job)

    def jobs(self) -> int:
        return len({s.record.job_id for s in self.segments})

    def empty_message(self) -> str:
        return (
            f"no run ended between {self.since:%Y-%m-%d %H:%M} and {self.until:%Y-%m-%d %H:%M} "
            f"UTC in {self.ledger}/ledger/v1: nothing to report (widen --days or --since, or "
            "check --store)"
        )


def load(
    store_uri: str,
    since: datetime,
    until: datetime,
    actuals: Path | None = None,
    settle: Actuals | None = None,
    now: datetime | None = None,
) -> Report:
    """The report over the ledger in the store a URI names (a folder, s3://, gs://); pending
    counterfactuals (run-now, and best in hindsight once the job's window has passed) are
    completed from the traces in `actuals` where they cover them, in the report only.
    With `settle` (a region's actual intensity, from the providers), pending counterfactuals
    whose actuals now exist are worked out and written back to the ledger first, so the
    records are settled once and every later report reads them done."""
    store, _ = open_store(store_uri, field="store (--store)", create=False)
    found = entries(store, since, until)
    records = [r for _, r in found]
    if settle is not None:
        at = now or datetime.now(UTC)
        records = [_settled(store, key, r, settle, at) for key, r in found]
    completed: dict[str, float] = {}
    best: dict[str, float] = {}
    if actuals:
        catalog = default_catalog()
        completed = completed_run_now(records, actuals, catalog)
        best = completed_best_in_hindsight(records, actuals, catalog, now or datetime.now(UTC))
    return build(records, since, until, store.uri, completed, str(actuals or ""), best)


def build(
    records: Iterable[LedgerRecord],
    since: datetime,
    until: datetime,
    ledger: str,
    completed: Mapping[str, float] | None = None,
    actuals: str = "",
    completed_best: Mapping[str, float] | None = None,
) -> Report:
    done, best = completed or {}, completed_best or {}
    segments = [segment(r, done.get(r.run_id), best.get(r.run_id)) for r in records]
    return Report(since, until, ledger, segments, actuals)


# -- outputs -------------------------------------------------------------------------------------


def _measured(fraction: float | None) -> str:
    if fraction is None or fraction <= 0:
        return "all of it estimated"
    if fraction >= 1:
        return "all of it measured"
    return f"{fraction:.0%} of it measured, the rest estimated"


def _n(count: int, thing: str) -> str:
    return f"{count} {thing}" if count == 1 else f"{count} {thing}s"


def _fixed(value: float, decimals: int) -> str:
    return figure(value, decimals)


def _kg(value: float | None) -> str:
    return "n/a" if value is None else _fixed(value, 3)


def _kwh(value: float) -> str:
    return _fixed(value, 2)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def _delay(value: float | None) -> str:
    return "n/a" if value is None else format_duration(value)


def markdown(report: Report, chart: str | None = None) -> str:
    """The report as markdown: headline per signal, then per region and per job."""
    lines = [
        f"# Emissions report, {report.since:%Y-%m-%d %H:%M} to {report.until:%Y-%m-%d %H:%M} UTC",
        "",
        f"Ledger: `{report.ledger}`: {_n(len(report.segments), 'run segment')} of "
        f"{_n(report.jobs(), 'job')} ended in the period.",
    ]
    if report.empty:
        return "\n".join([*lines, "", f"Nothing to report: {report.empty_message()}.", ""])
    for t in report.overall():
        lines += [
            "",
            f"## Totals, {t.signal} intensity (location-based)",
            "",
            *_headline(t, report.actuals),
        ]
    lines += [
        "",
        "Figures are per run segment and add up: each segment is compared with the same energy "
        "started at its submission in its home region, on that region's actual intensity "
        "(run-now), and with the best slot among its candidates in hindsight. Delay: a job's "
        "first start in the period minus its submission.",
        "",
        "## Per region",
        "",
        "| region | signal | segments | kWh | kg CO2 | run-now kg | saved kg | saved | "
        "share of possible | pending |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for t in report.by_region():
        lines.append(
            f"| {t.key} | {t.signal} | {t.segments} | {_kwh(t.energy_kwh)} | {_kg(t.emissions_kg)} "
            f"| {_kg(t.run_now_kg if t.compared else None)} "
            f"| {_kg(t.saved_kg if t.compared else None)} | {_pct(t.saved_fraction)} "
            f"| {_pct(t.share_of_possible)} | {t.pending} |"
        )
    lines += [
        "",
        "## Per job",
        "",
        "| job | signal | segments | kWh | kg CO2 | run-now kg | saved kg | share of possible "
        "| delay | pending |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for t in report.by_job():
        lines.append(
            f"| {t.key} | {t.signal} | {t.segments} | {_kwh(t.energy_kwh)} | {_kg(t.emissions_kg)} "
            f"| {_kg(t.run_now_kg if t.compared else None)} "
            f"| {_kg(t.saved_kg if t.compared else None)} | {_pct(t.share_of_possible)} "
            f"| {_delay(t.delay(0))} | {t.pending} |"
        )
    if chart:
        lines += ["", f"Chart: {chart}."]
    return "\n".join(lines) + "\n"


def _headline(t: Totals, actuals: str) -> list[str]:
    measured = t.measured_kwh / t.energy_kwh if t.energy_kwh > 0 else None
    lines = [
        f"- **Emitted: {_kg(t.emissions_kg)} kg CO2** from {_kwh(t.energy_kwh)} kWh "
        f"({_measured(measured)}).",
    ]
    if t.compared:
        lines.append(
            f"- **Saved against running at once in the home region: {_kg(t.saved_kg)} kg CO2** "
            f"({_pct(t.saved_fraction)} of the {_kg(t.run_now_kg)} kg run-now would have "
            f"emitted), over {t.compared} of {_n(t.segments, 'segment')}."
        )
    else:
        lines.append(
            "- Saved against running at once in the home region: n/a (no segment "
            "has a known run-now counterfactual)."
        )
    if t.completed or t.best_completed:
        which = " and ".join(
            _n(count, f"{kind} counterfactual")
            for count, kind in ((t.completed, "run-now"), (t.best_completed, "best-in-hindsight"))
            if count
        )
        lines.append(
            f"- Completed by this report: {which} pending in the ledger, from the recorded "
            f"actual intensity in `{actuals}` (the segment's metered energy per interval; spread "
            "evenly over its run where the record has none)."
        )
    if t.pending:
        lines.append(
            f"- Not counted in the savings: {_n(t.pending, 'segment')} ({_kg(t.pending_kg)} kg "
            "emitted) "
            "whose run-now counterfactual is pending (the home region's actual intensity was "
            "not known yet)."
        )
    if t.uncompared:
        lines.append(
            f"- Not counted in the savings: {_n(t.uncompared, 'segment')} with no run-now "
            "counterfactual recorded."
        )
    lines.append(_share_line(t))
    lines.append(
        f"- Delay per job: median {_delay(t.delay(50))}, p90 {_delay(t.delay(90))}, "
        f"max {_delay(t.delay(100))} ({_n(len(t.delays_s), 'job')})."
    )
    if t.on_forecast or t.on_fallback:
        actual = max(t.intervals - t.on_forecast - t.on_fallback, 0)
        lines.append(
            f"- Intensity: actual for {actual} of {t.intervals} metered intervals that drew "
            f"energy; {t.on_forecast} on the forecast, {t.on_fallback} on the fallback (the "
            "region's annual mean, no forecast either): those intervals' emissions are estimates."
        )
    if t.embodied_kg is not None:
        from carbonshift.accounting import EMBODIED_KG_PER_GPU_HOUR, EMBODIED_SOURCE

        lines.append(
            f"- Embodied emissions (hardware manufacturing, an estimate shown apart, not added): "
            f"{_kg(t.embodied_kg)} kg CO2e over {_fixed(t.gpu_hours, 1)} GPU-hours of "
            f"{t.embodied_segments} of {_n(t.segments, 'segment')}, at "
            f"{EMBODIED_KG_PER_GPU_HOUR * 1000:.1f} g CO2e per GPU-hour ({EMBODIED_SOURCE})."
        )
    if t.avoided_marginal_kg is not None:
        lines.append(
            f"- Avoided emissions, marginal (MOER) estimate, shown apart and not added: "
            f"{_kg(t.avoided_marginal_kg)} kg CO2."
        )
    return lines


def _share_line(t: Totals) -> str:
    """The share of possible savings, and why it is missing when it is: pending (said so, and
    how it gets completed), or nothing to compare."""
    pending = (
        f"the best slot in hindsight is pending for {_n(t.best_pending, 'segment')}: the "
        "actual intensity over its job's window, up to the deadline, is not all published "
        "yet; the `emissions-report` flow works it out from the providers once it is and "
        "writes it to the ledger, and later reports read it (`--traces DIR` works it out "
        "here from recorded actuals)"
    )
    if t.possible_kg > 0:
        why = (
            f"{_kg(t.captured_kg)} of the {_kg(t.possible_kg)} kg the best slot in hindsight "
            f"would have saved, over {t.possible_segments} of {_n(t.segments, 'segment')}"
        )
        if t.best_pending:
            why += f"; not counted: {pending}"
        return f"- **Share of possible savings: {_pct(t.share_of_possible)}** ({why})."
    if t.best_pending and not t.possible_segments:
        return f"- **Share of possible savings: pending** ({pending})."
    if t.possible_segments:
        why = (
            "the best slot in hindsight would have saved nothing against run-now, over "
            f"{t.possible_segments} of {_n(t.segments, 'segment')}"
        )
        if t.best_pending:
            why += f"; {pending}"
    else:
        why = "no segment has both a run-now and a best-in-hindsight counterfactual recorded"
    return f"- **Share of possible savings: {_pct(t.share_of_possible)}** ({why})."


CSV_COLUMNS = (
    "run_id", "job", "job_id", "previous_run_id", "outcome", "region", "instance_type",
    "submitted_at", "started_at", "ended_at", "delay_s", "energy_kwh", "energy_measured",
    "pue", "emissions_kg", "mean_g_per_kwh", "signal", "intervals", "intervals_on_forecast",
    "intervals_on_fallback",
    "run_now_kg", "run_now_pending", "run_now_completed", "best_in_hindsight_kg",
    "best_in_hindsight_completed", "saved_kg", "possible_kg", "avoided_marginal_kg", "cost_usd",
    "gpu_hours", "embodied_kg",
)  # fmt: skip


def rows(report: Report) -> list[dict[str, Any]]:
    """One row per segment (JSON-ready): the CSV's and the table artifact's."""
    out = []
    for s in report.segments:
        r = s.record
        out.append({
            "run_id": r.run_id, "job": r.job, "job_id": r.job_id,
            "previous_run_id": r.previous_run_id, "outcome": r.outcome, "region": r.region,
            "instance_type": r.instance_type,
            "submitted_at": r.submitted_at.isoformat() if r.submitted_at else None,
            "started_at": r.started_at.isoformat(), "ended_at": r.ended_at.isoformat(),
            "delay_s": r.delay_s, "energy_kwh": r.energy_kwh,
            "energy_measured": r.energy_measured, "pue": r.pue, "emissions_kg": r.emissions_kg,
            "mean_g_per_kwh": r.mean_g_per_kwh, "signal": r.signal,
            "intervals": r.intervals, "intervals_on_forecast": r.intervals_on_forecast,
            "intervals_on_fallback": r.intervals_on_fallback, "run_now_kg": s.run_now_kg,
            "run_now_pending": s.run_now_pending, "run_now_completed": s.run_now_completed,
            "best_in_hindsight_kg": s.best_kg, "best_in_hindsight_completed": s.best_completed,
            "saved_kg": _clean(s.saved_kg), "possible_kg": _clean(s.possible_kg),
            "avoided_marginal_kg": r.avoided_marginal_kg, "cost_usd": r.cost_usd,
            "gpu_hours": r.gpu_hours, "embodied_kg": r.embodied_kg,
        })  # fmt: skip
    return out


def job_rows(report: Report) -> list[dict[str, Any]]:
    """Per job and signal (JSON-ready): the table artifact's rows."""

    def rounded(value: float | None, digits: int = 3) -> float | None:
        return None if value is None else round(value, figure_decimals(value, digits))

    return [
        {
            "job": t.key,
            "signal": t.signal,
            "segments": t.segments,
            "energy_kwh": rounded(t.energy_kwh, 2),
            "emissions_kg": rounded(t.emissions_kg),
            "run_now_kg": rounded(t.run_now_kg) if t.compared else None,
            "saved_kg": rounded(t.saved_kg) if t.compared else None,
            "share_of_possible_pct": rounded(_times_100(t.share_of_possible), 1),
            "delay": _delay(t.delay(0)),
            "pending": t.pending,
            "embodied_kg_apart": rounded(t.embodied_kg, 4),
        }
        for t in report.by_job()
    ]


def _times_100(value: float | None) -> float | None:
    return None if value is None else 100 * value


def _clean(value: float | None) -> float | None:
    """A difference without its float noise (4.0161 - ... = 4.016099999999999)."""
    return None if value is None else round(value, 9)


def csv_text(report: Report) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows(report):
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buffer.getvalue()


def jsonl_text(report: Report) -> str:
    """The period's ledger records, one JSON line each, as the ledger holds them."""
    return "".join(s.record.line() for s in report.segments)


def days(report: Report) -> list[date]:
    last = (report.until - timedelta(microseconds=1)).date()
    n = (last - report.since.date()).days + 1
    return [report.since.date() + timedelta(days=i) for i in range(n)]


def daily(report: Report, signal: str) -> tuple[list[date], list[float], list[float | None]]:
    """Emitted kg per day (by the day a segment ended) and run-now kg where known for every
    segment of that day (None on a day with none, or with a pending one)."""
    span = days(report)
    emitted = dict.fromkeys(span, 0.0)
    run_now: dict[date, float | None] = dict.fromkeys(span, 0.0)
    for s in report.segments:
        if s.record.signal != signal:
            continue
        day = s.record.ended_at.date()
        emitted[day] += s.record.emissions_kg
        known = run_now[day]
        run_now[day] = None if known is None or s.run_now_kg is None else known + s.run_now_kg
    seen = {s.record.ended_at.date() for s in report.segments if s.record.signal == signal}
    return span, [emitted[d] for d in span], [run_now[d] if d in seen else None for d in span]


def chart_svg(report: Report) -> str:
    """Emitted and run-now kg per day, one panel per signal (as the totals are per signal)."""
    from carbonshift.study_charts import Panel, report_chart_svg  # matplotlib: only when drawn

    signals = list(dict.fromkeys(t.signal for t in report.overall())) or ["lca"]
    panels = []
    for signal in signals:
        _, emitted, run_now = daily(report, signal)
        kind = "location-based" if signal in LOCATION_BASED else "marginal, shown apart"
        panels.append(Panel(f"{signal} intensity ({kind})", emitted, run_now))
    return report_chart_svg(
        days(report),
        panels,
        title=f"kg CO2 per day, {report.since:%Y-%m-%d} to {report.until:%Y-%m-%d}",
    )


def as_json(report: Report) -> dict[str, Any]:
    def figures(t: Totals) -> dict[str, Any]:
        return {
            "key": t.key, "signal": t.signal, "segments": t.segments,
            "energy_kwh": t.energy_kwh, "measured_kwh": t.measured_kwh,
            "emissions_kg": t.emissions_kg, "compared_segments": t.compared,
            "run_now_kg": t.run_now_kg if t.compared else None,
            "saved_kg": t.saved_kg if t.compared else None, "saved_fraction": t.saved_fraction,
            "pending_segments": t.pending, "pending_emissions_kg": t.pending_kg,
            "completed_segments": t.completed, "best_completed_segments": t.best_completed,
            "uncompared_segments": t.uncompared, "possible_kg": t.possible_kg,
            "captured_kg": t.captured_kg, "share_of_possible": t.share_of_possible,
            "delay_median_s": t.delay(50), "delay_p90_s": t.delay(90),
            "delay_max_s": t.delay(100), "avoided_marginal_kg": t.avoided_marginal_kg,
            "intervals": t.intervals, "intervals_on_forecast": t.on_forecast,
            "intervals_on_fallback": t.on_fallback, "embodied_kg": t.embodied_kg,
            "gpu_hours": t.gpu_hours, "best_pending_segments": t.best_pending,
        }  # fmt: skip

    return {
        "since": report.since.isoformat(),
        "until": report.until.isoformat(),
        "ledger": report.ledger,
        "segments": len(report.segments),
        "jobs": report.jobs(),
        "totals": [figures(t) for t in report.overall()],
        "by_region": [figures(t) for t in report.by_region()],
        "by_job": [figures(t) for t in report.by_job()],
    }


FILES = ("report.md", "report.csv", "ledger.jsonl", "report.svg")


def outputs(report: Report) -> dict[str, str]:
    """The report's files by name: markdown, CSV, the period's JSON lines and the chart."""
    return {
        "report.md": markdown(report, chart="report.svg"),
        "report.csv": csv_text(report),
        "ledger.jsonl": jsonl_text(report),
        "report.svg": chart_svg(report),
    }


def put(report: Report, store: ObjectStore, prefix: str) -> list[str]:
    """The report's files into a store under `prefix`; their URIs."""
    uris = []
    for name, text in outputs(report).items():
        store.put(f"{prefix}/{name}", text.encode("utf-8"))
        uris.append(f"{store.uri}/{prefix}/{name}")
    return uris


def write(report: Report, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in outputs(report).items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def _settled(
    store: ObjectStore, key: str, record: LedgerRecord, settle: Actuals, now: datetime
) -> LedgerRecord:
    done = complete(record, settle, now)
    if done != record:
        rewrite(store, key, done)  # where it was read: the record, now with its counterfactuals
    return done
