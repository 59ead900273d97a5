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
from carbonshift.energy import Accounting
from carbonshift.plan import FeasiblePlan, InfeasiblePlan, Plan, Slot, SpreadPlan
from carbonshift.training import TrainingOutcome

ScheduleStatus = Literal["scheduled", "unchanged", "replaced", "running", "not-scheduled", "failed"]
PLAN_TABLE_KEY = "plan-summary"


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
    job: str,
    region: str,
    acc: Accounting,
    meter_label: str,
    outcome: TrainingOutcome,
    stopped_by: str | None,
) -> str:
    """A run's energy and emissions; `stopped_by` is the monitor's reason when it stopped it."""
    lines = [
        f"# {job}: energy and emissions",
        "",
        "| | value |",
        "| --- | ---: |",
        f"| energy | {acc.energy_kwh:.4f} kWh |",
        f"| emissions (energy per interval x actual intensity) | {acc.emissions_kg:.4f} kg CO2 |",
        f"| same energy profile, started at once in {region} | {acc.counterfactual_kg:.4f} kg |",
        f"| saved | {acc.savings_kg:.4f} kg CO2 |",
        "",
        f"Meter: {meter_label}. Intensity used: {acc.intensity_source}. "
        f"Intervals: {acc.intervals}.",
        "",
        f"Training: step {outcome.step}/{outcome.total_steps}"
        f" ({'complete' if outcome.completed else outcome.stopped_reason}).",
    ]
    if stopped_by is not None:
        lines += ["", f"Stopped by the monitor: {stopped_by}."]
    return "\n".join(lines) + "\n"


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
