"""Artifact content built by pure functions: keys, the plan table, per-job markdown and charts.

The flows publish these with Prefect; here they are plain strings and rows, snapshot-tested.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from carbonshift import scoring
from carbonshift.accounting import Figures, figures
from carbonshift.ledger import LedgerRecord
from carbonshift.plan import FeasiblePlan, InfeasiblePlan, Plan, Slot, SpreadPlan
from carbonshift.training import TrainingOutcome
from carbonshift.units import figure

ScheduleStatus = Literal["scheduled", "unchanged", "replaced", "running", "not-scheduled", "failed"]
PLAN_TABLE_KEY = "plan-summary"
# Up to this many plans, each job gets its own explanation artifact (`plan-<job>`) and forecast
# chart (`plan-chart-<job>`); a bigger queue gets one explanation artifact for all its jobs
# (PLAN_EXPLANATIONS_KEY) and no charts. At a thousand jobs, per-job artifacts were two API
# calls and a matplotlib render (~0.15 s) per job, most of a planning run, and tens of MB of
# charts a day on the server.
PER_JOB_ARTIFACTS_UP_TO = 100
PLAN_EXPLANATIONS_KEY = "plan-explanations"


@dataclass(frozen=True)
class Scheduled:
    """What the planner did about one job's training run."""

    job: str
    status: ScheduleStatus
    flow_run_id: str | None = None
    link: str | None = None
    note: str = ""


@dataclass(frozen=True)
class PlanFigures:
    """A feasible plan's headline figures, the same for the CLI and the artifacts. A spread
    plan's figures cover all its replicas (its `now_home` baseline already does)."""

    regions: str
    instance_type: str
    start: datetime
    end: datetime
    g_per_kwh: float
    kg_co2: float
    now_home_kg_co2: float
    savings_fraction: float | None  # None: "now at home" is on another signal, nothing claimed
    cost_usd: float
    source: str
    spot_price: str  # where the $/h of an interruptible plan came from; empty for on-demand


def spot_prices(slots: Sequence[Slot]) -> str:
    """The spot-price labels of these slots, each once, in order ('' for on-demand)."""
    return "; ".join(dict.fromkeys(s.spot_price for s in slots if s.spot_price))


def placed(plan: Plan) -> list[Slot]:
    """The slots a plan runs in: its chosen one, a spread plan's shards, none if infeasible."""
    match plan:
        case FeasiblePlan():
            return [plan.chosen]
        case SpreadPlan():
            return plan.shards
        case InfeasiblePlan():
            return []


def alternatives(plan: Plan) -> list[Slot]:
    """The options a plan was chosen from, best first (a spread plan's are its shards)."""
    match plan:
        case FeasiblePlan():
            return plan.alternatives
        case SpreadPlan():
            return plan.shards
        case InfeasiblePlan():
            return []


def plan_figures(plan: FeasiblePlan | SpreadPlan) -> PlanFigures:
    shards = placed(plan)
    c, x = shards[0], plan.explanation
    kg = sum(s.emissions_kg for s in shards)
    kwh = sum(s.energy_kwh for s in shards)
    mean = c.mean_g_per_kwh if len(shards) == 1 or kwh <= 0 else scoring.mean_g_per_kwh(kg, kwh)
    return PlanFigures(
        regions=", ".join(s.region for s in shards),
        instance_type=c.instance_type,
        start=c.start,
        end=c.end,
        g_per_kwh=mean,
        kg_co2=kg,
        now_home_kg_co2=x.now_home.emissions_kg,
        savings_fraction=x.savings_fraction if x.savings_comparable else None,
        cost_usd=sum(s.cost_usd for s in shards),
        source=x.forecast_source,
        spot_price=spot_prices(shards),
    )


def artifact_key(prefix: str, name: str) -> str:
    """A stable Prefect artifact key: lowercase letters, digits and dashes only."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return f"{prefix}-{slug}" if slug else prefix


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


def plan_rows(
    plans: Sequence[Plan], scheduled: Mapping[str, Scheduled]
) -> list[dict[str, str | float | None]]:
    """One row per job for the planning run's table artifact (JSON-serialisable values). A job
    refused for a bad spec has its `field` set and the message (with the fix) under `run`; a
    job that could not be (or was not) scheduled says why under `run`."""
    rows: list[dict[str, str | float | None]] = []
    for plan in plans:
        done = scheduled.get(plan.job)
        if isinstance(plan, InfeasiblePlan):
            rows.append(
                {
                    "job": plan.job,
                    "region": None,
                    "instance_type": None,
                    "start_utc": None,
                    "end_utc": None,
                    "forecast_g_per_kwh": None,
                    "expected_kg_co2": None,
                    "now_home_kg_co2": None,
                    "savings_pct": None,
                    "expected_cost_usd": None,
                    "forecast_source": None,
                    "spot_price": None,
                    "status": "not-scheduled",
                    "run": plan.reason,
                    "field": plan.field or None,
                }
            )
            continue
        f = plan_figures(plan)
        rows.append(
            {
                "job": plan.job,
                "region": f.regions,
                "instance_type": f.instance_type,
                "start_utc": _when(f.start),
                "end_utc": _when(f.end),
                "forecast_g_per_kwh": round(f.g_per_kwh, 1),
                "expected_kg_co2": round(f.kg_co2, 3),
                "now_home_kg_co2": round(f.now_home_kg_co2, 3),
                "savings_pct": None
                if f.savings_fraction is None
                else round(100 * f.savings_fraction, 1),
                "expected_cost_usd": round(f.cost_usd, 2),
                "forecast_source": f.source,
                "spot_price": f.spot_price or None,
                "status": done.status if done else "not-scheduled",
                "run": (done.link or done.flow_run_id or done.note) if done else None,
                "field": None,
            }
        )
    return rows


def plans_markdown(plans: Sequence[Plan], scheduled: Mapping[str, Scheduled]) -> str:
    """Every job's explanation in one document (a queue of more than PER_JOB_ARTIFACTS_UP_TO
    jobs): each job's section is what its own `plan-<job>` artifact would hold."""
    intro = (
        f"# Plans of {len(plans)} jobs\n\nOne section per job, in queue order; the "
        f"`{PLAN_TABLE_KEY}` table lists them all. Queues of more than {PER_JOB_ARTIFACTS_UP_TO} "
        "jobs get this one artifact instead of one explanation and one chart per job.\n"
    )
    return "\n".join([intro, *(plan_markdown(p, scheduled.get(p.job)) for p in plans)])


def plan_markdown(plan: Plan, scheduled: Scheduled | None, chart_key: str | None = None) -> str:
    """Why this slot: chosen against runner-up and starting now in the home region."""
    if isinstance(plan, InfeasiblePlan):
        return f"# {plan.job}: not scheduled\n\n{plan.reason}\n"
    x = plan.explanation
    shards = placed(plan)
    chosen = shards[0]
    lines = [
        f"# {plan.job}",
        "",
        f"**{x.reason}.**",
        "",
        "| option | region | instance | start (UTC) | end (UTC) | g/kWh | kg CO2 | cost $ "
        "| source |",
        "| --- | --- | --- | --- | --- | ---: | ---: | ---: | --- |",
    ]
    options: list[tuple[str, Slot]] = [("chosen", s) for s in shards]
    if x.runner_up is not None:
        options.append(("runner-up", x.runner_up))
    home = "now, home region"
    if len(shards) > 1:
        home += f", {len(shards)} replicas"
    options.append((home, x.now_home))
    for label, s in options:
        lines.append(
            f"| {label} | {s.region} | {s.instance_type} | {_when(s.start)} | {_when(s.end)} | "
            f"{s.mean_g_per_kwh:.0f} | {s.emissions_kg:.2f} | {s.cost_usd:.2f} | {s.source} |"
        )
    if chosen.segments:
        runs = ", ".join(f"{_when(a)}-{b:%H:%M}" for a, b in chosen.segments)
        lines += ["", f"Runs: {runs}."]
    lines += [
        "",
        f"Expected savings against starting now in the home region: {x.savings_kg:.2f} kg CO2 "
        f"({x.savings_fraction:.0%})."
        if x.savings_comparable
        else "Expected savings against starting now in the home region: not claimed (its only "
        f"figure is a {x.now_home.signal} annual mean, the plan is on {chosen.signal}).",
        "",
        f"Energy estimate: {x.energy_estimate}.",
        "",
        f"Forecast coverage of the job's window: {chosen.coverage:.0%}.",
    ]
    lines += _spot_price_lines(options)
    if scheduled is not None and scheduled.status == "not-scheduled":
        lines += ["", f"**Training run not scheduled:** {scheduled.note}"]
    elif scheduled is not None and scheduled.status == "failed":
        lines += ["", f"**Training run could not be created:** {scheduled.note}"]
    elif scheduled is not None:
        target = scheduled.link or scheduled.flow_run_id or ""
        lines += ["", f"Training run: {scheduled.status} {target} {scheduled.note}".rstrip()]
    if chart_key:
        lines += ["", f"Forecast chart: artifact `{chart_key}`."]
    return "\n".join(lines) + "\n"


def _spot_price_lines(options: Sequence[tuple[str, Slot]]) -> list[str]:
    """Where the spot prices in the options table came from: one line when they share a
    source, else one per option (a quoted region next to one priced from the catalog)."""
    priced = [(label, s) for label, s in options if s.spot_price]
    labels = list(dict.fromkeys(s.spot_price for _, s in priced))
    if len(labels) == 1:
        return ["", f"Spot price: {labels[0]}."]
    if not labels:
        return []
    return ["", "Spot prices:"] + [f"- {label}, {s.region}: {s.spot_price}" for label, s in priced]


def emissions_markdown(
    record: LedgerRecord,
    meter_label: str,
    outcome: TrainingOutcome | None,
    stopped_by: str | None,
) -> str:
    """A run segment's table from its ledger record: energy by device (measured or estimated),
    PUE, location-based emissions, mean intensity, the counterfactuals on actual intensity,
    savings, share of the possible savings, delay and cost. A marginal (MOER) comparison is
    shown as an avoided-emissions estimate, apart; `stopped_by` is the monitor's reason."""
    f = figures(record)
    kind = "avoided-emissions estimate (marginal, MOER)" if f.marginal else "location-based"
    lines = [
        f"# {record.job}: energy and emissions",
        "",
        "| | value |",
        "| --- | ---: |",
    ]
    for d in record.devices:
        # A device row is the hardware's own energy; the facility's overhead is the PUE row,
        # and the total is the rows times it (carbonshift.run.supervisor.devices_of).
        how = "measured" if d.measured else "estimated"
        what = "board, before PUE" if d.device.startswith("GPU ") else "before PUE"
        lines.append(f"| energy, {d.device} ({how}; {what}) | {figure(d.energy_kwh, 4)} kWh |")
    measured = "measured" if record.energy_measured else "estimated"
    lines += [
        f"| PUE | {record.pue:.2f} |",
        f"| energy, total (PUE included) | {figure(record.energy_kwh, 4)} kWh ({measured}) |",
        f"| emissions, location-based ({record.signal}) | {figure(record.emissions_kg, 4)} "
        "kg CO2 |",
        f"| mean intensity | {record.mean_g_per_kwh:.0f} g/kWh |",
    ]
    if f.marginal and record.marginal_emissions_kg is not None:
        lines.append(
            "| emissions on marginal intensity (MOER) | "
            f"{figure(record.marginal_emissions_kg, 4)} kg CO2 |"
        )
    for c in record.counterfactuals:
        if c.kind == "run-now-home":
            what = f"started at submission in {c.region} ({_when(c.start)} UTC)"
        elif c.pending or c.emissions_kg is None:
            # Not found yet: its region and start are placeholders, not a slot to show.
            regions = ", ".join(record.candidate_regions) or c.region
            by = f" by {_when(record.deadline)} UTC" if record.deadline else ""
            what = f"best slot in hindsight, among {regions}{by}"
        else:
            what = f"best slot in hindsight: {c.region} at {_when(c.start)} UTC"
        lines.append(f"| counterfactual: {what} | {_kg(c.emissions_kg)} |")
    saved = (
        "pending"
        if f.saved_kg is None
        else f"{figure(f.saved_kg, 4)} kg CO2"
        + ("" if f.savings_fraction is None else f" ({f.savings_fraction:.1%})")
    )
    if record.embodied_kg is not None:
        lines.append(
            "| embodied emissions, manufacturing (apart, not added) | "
            f"{figure(record.embodied_kg, 4)} kg CO2e |"
        )
    lines += [
        f"| saved against starting at submission, {kind} | {saved} |",
        f"| share of possible savings{' (marginal)' if f.marginal else ''} | {_share(f)} |",
        f"| delay against submission | {_duration(record.delay_s)} |",
        f"| cost | {_usd(record.cost_usd)} |",
        "",
        (
            "Location-based emissions: energy x the region's annual mean (life-cycle, static), "
            "as the actual intensity was marginal (MOER). "
            if record.marginal_emissions_kg is not None
            else "Emissions: energy per interval x actual intensity. "
        )
        + f"Intensity used: {_intensity_used(record)}.",
        "",
        f"Counterfactuals: the same energy profile, on actual intensity ({f.signal or 'none'})"
        + (
            "; pending ones are completed by the report once actuals are published."
            if f.pending
            else "."
        ),
    ]
    if record.embodied_kg is not None:
        lines += ["", _embodied(record.embodied_kg, record.gpu_hours or 0.0)]
    if record.avoided_marginal_kg is not None:
        lines += [
            "",
            "Avoided emissions (marginal, MOER): "
            f"{figure(record.avoided_marginal_kg, 4)} kg CO2, an estimate shown beside the "
            "location-based figure, never added to it.",
        ]
    lines += [
        "",
        f"Meter: {meter_label}. PUE: {record.pue:.2f}.",
        "",
        (
            f"Training: step {outcome.step}/{outcome.total_steps}"
            f" ({'complete' if outcome.completed else outcome.stopped_reason}); ledger: "
            if outcome is not None
            else "Training failed (see the run's logs); ledger: "
        )
        + f"{record.outcome}, run {record.run_id}"
        + (f", resumes {record.previous_run_id}" if record.previous_run_id else "")
        + ".",
    ]
    if stopped_by is not None:
        lines += ["", f"Stopped by the monitor: {stopped_by}."]
    return "\n".join(lines) + "\n"


def _embodied(kg: float, gpu_hours: float) -> str:
    from carbonshift.accounting import EMBODIED_KG_PER_GPU_HOUR, EMBODIED_SOURCE

    return (
        f"Embodied emissions (hardware manufacturing, an estimate shown apart, never added to "
        f"the emissions above): {figure(kg, 4)} kg CO2e, {figure(gpu_hours, 2)} GPU-hours x "
        f"{EMBODIED_KG_PER_GPU_HOUR * 1000:.1f} g CO2e per GPU-hour ({EMBODIED_SOURCE})."
    )


def _kg(kg: float | None) -> str:
    return "pending" if kg is None else f"{figure(kg, 4)} kg CO2"


def _share(f: Figures) -> str:
    if f.pending or f.run_now_kg is None or f.best_kg is None:
        return "pending"
    share = f.share
    return "none possible (best = starting at submission)" if share is None else f"{share:.0%}"


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def _usd(usd: float | None) -> str:
    return "unknown" if usd is None else f"${usd:.2f} (the plan's $/h x hours run)"


def _intensity_used(record: LedgerRecord) -> str:
    """Counted over the intervals that drew energy (an idle one is charged no intensity), and
    what stood in where actuals were missing: the forecast, or the fallback."""
    forecast, fallback = record.intervals_on_forecast, record.intervals_on_fallback
    actual = max(record.intervals - forecast - fallback, 0)
    text = f"actual for {actual} of {record.intervals} intervals that drew energy"
    stood_in = [f"{forecast} on the forecast"] if forecast else []
    if fallback:
        stood_in.append(
            f"{fallback} on the fallback (the region's annual mean, no forecast either)"
        )
    if not record.estimated:
        return "; ".join([text, ", ".join(stood_in)]) if stood_in else text
    spans = ", ".join(f"{_when(e.start)}-{e.end:%H:%M} UTC ({e.source})" for e in record.estimated)
    return f"{text}; {', '.join(stood_in) or 'not counted'}: {spans}"


def svg_data_url(svg: str) -> str:
    """An SVG as a data URL, for an image artifact: the Prefect UI shows it in an <img>, so it
    needs no file server (carbonshift.charts draws glyphs as paths, as <img> loads no fonts)."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


@dataclass(frozen=True)
class Column:
    """One column of a text table: the row key it shows, its title and width, the format spec
    of a value (a number's, or a datetime's strftime), and what an empty cell shows."""

    key: str
    title: str
    width: int = 0
    spec: str = ""
    right: bool = False
    gap: str = " "  # before the column (none before the first)
    missing: str = ""


def text_table(
    columns: Sequence[Column],
    rows: Sequence[Mapping[str, object] | str],
    note: Callable[[Mapping[str, object]], str] = lambda row: "",
) -> str:
    """The plan table for a terminal, the CLI's and the demo's: a header, a rule, a line per
    row (a string row is printed as it is) with the row's `note` after it."""

    def line(texts: Sequence[str]) -> str:
        cells = [
            c.gap + f"{t:{'>' if c.right else '<'}{c.width}}"
            for c, t in zip(columns, texts, strict=True)
        ]
        return "".join(cells)[len(columns[0].gap) :]

    def cell(row: Mapping[str, object], c: Column) -> str:
        v = row.get(c.key)
        return c.missing if v is None else format(v, c.spec)

    header = line([c.title for c in columns])
    lines = [header, "-" * len(header)]
    for row in rows:
        if isinstance(row, str):
            lines.append(row)
            continue
        lines.append((line([cell(row, c) for c in columns]) + note(row)).rstrip())
    return "\n".join(lines)


ROW_COLUMNS = (
    Column("job", "job", 20),
    Column("region", "region", 20),
    Column("instance_type", "instance", 14),
    Column("start_utc", "start (UTC)", 16),
    Column("forecast_g_per_kwh", "g/kWh", 6),
    Column("expected_kg_co2", "kg CO2", 8),
    Column("savings_pct", "saved %", 7),
    Column("status", "status", 13),
)


def rows_as_text(rows: Sequence[Mapping[str, object]]) -> str:
    """The plan table artifact's rows for a terminal; a job not scheduled says why."""

    def why(row: Mapping[str, object]) -> str:
        failed = row.get("status") in ("not-scheduled", "failed") and row.get("run")
        return f"  {row['run']}" if failed else ""

    return text_table(ROW_COLUMNS, rows, why)
