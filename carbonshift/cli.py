"""`carbonshift` command line: backtests and plans on recorded traces; one training run and the
instance reaper (through the project's flows)."""

from __future__ import annotations

import argparse
import gc
import json
import math
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic_core import PydanticSerializationError, to_json

from carbonshift.backtest import backtest
from carbonshift.catalog import Catalog, CatalogError, default_catalog
from carbonshift.cli_args import duration, instant, signal_and_json
from carbonshift.forks import texts_in_forks, worker_cap, worker_count
from carbonshift.job import load_jobs
from carbonshift.plan import InfeasiblePlan, Plan, plan_record
from carbonshift.planner import ScoredQueue, forecasts_for, score_jobs
from carbonshift.project import run_project_module
from carbonshift.series import IntensitySeries, SeriesError
from carbonshift.traces import bundled_traces_dir, join, read_trace, traces_in
from carbonshift.units import DURATION_HELP, INSTANT_HELP

if TYPE_CHECKING:
    from carbonshift.artifacts import Column

MAX_FORECAST_ERROR = 10.0  # 1000% one day ahead: beyond it the noise model overflows
MAX_THROUGHPUT = 1000.0  # relative to an A100


def main(argv: Sequence[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else list(argv)
    # `plan` is timed on queues of thousands of jobs: its parser alone spares it importing the
    # cloud, study and forecast commands (over half a second), and parses its arguments alike.
    parser = _parser(plan_only=given[:1] == ["plan"])
    args = parser.parse_args(given)
    try:
        code: int = args.run(args)
        return code
    except Exception as e:
        if not isinstance(e, _user_errors()):
            raise
        print(f"carbonshift: error: {e}", file=sys.stderr)
        return 2


def _user_errors() -> tuple[type[Exception], ...]:
    """The errors main reports on one line. The providers (httpx, pandas) are imported only once
    an error is raised: `plan` never loads them otherwise."""
    from carbonshift.providers import ForecastUnavailable, ProviderError

    return (SeriesError, CatalogError, ProviderError, ForecastUnavailable, ValueError, OSError)


def _parser(*, plan_only: bool = False) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="carbonshift", description=__doc__)
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    if not plan_only:
        _other_parsers(sub)
    _plan_parser(sub)
    return parser


def _other_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from carbonshift import cloud_cli, forecast_cli, study_cli

    bt = sub.add_parser("backtest", help="compare shifting policies on recorded traces")
    bt.add_argument(
        "traces",
        nargs="+",
        metavar="TRACE",
        type=Path,
        help="CSV traces; the first is the home region",
    )
    bt.add_argument(
        "--duration",
        required=True,
        type=duration(positive=True),
        help=f"job length, more than 0: {DURATION_HELP}",
    )
    bt.add_argument(
        "--slack",
        required=True,
        type=duration(),
        help="how long a job may wait, e.g. 24h; 0 = start on arrival",
    )
    bt.add_argument(
        "--forecast-error",
        type=_number(0.0, MAX_FORECAST_ERROR),
        default=None,
        metavar="E",
        help=f"relative forecast error one day ahead, e.g. 0.1 (0 to {MAX_FORECAST_ERROR:g})",
    )
    bt.add_argument(
        "--seed", type=_seed, default=0, help="seed of the forecast error (integer >= 0)"
    )
    bt.add_argument(
        "--resume-overhead",
        type=duration(),
        default=0.0,
        help="run time lost per resume of an interruptible job, e.g. 10m",
    )
    signal_and_json(bt)
    bt.set_defaults(run=_backtest)

    forecast_cli.add_parser(sub)
    cloud_cli.add_parsers(sub)
    study_cli.add_parsers(sub)

    demo = sub.add_parser(
        "demo", help="local Prefect server + worker: plan the example queue, run the urgent job"
    )
    demo.add_argument(
        "--exit",
        action="store_true",
        help="stop everything when the urgent run ends (non-zero unless completed)",
    )
    demo.add_argument(
        "--timeout",
        type=duration(positive=True),
        default=600.0,
        help="time to wait (default 600s)",
    )
    demo.add_argument(
        "--database",
        type=database_url,
        default=None,
        metavar="URL",
        help="the database of the demo's Prefect server, e.g. "
        "postgresql+asyncpg://USER:PASSWORD@HOST:5432/prefect (default: "
        "PREFECT_API_DATABASE_CONNECTION_URL if set, else a fresh SQLite file)",
    )
    demo.set_defaults(run=_demo)


def _plan_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pl = sub.add_parser("plan", help="plan a job file against recorded traces at a given moment")
    pl.add_argument(
        "--traces",
        type=Path,
        default=None,
        help="folder of CSV traces named by zone (default: the bundled 2023 traces)",
    )
    pl.add_argument("--jobs", required=True, type=Path, help="job file (YAML)")
    pl.add_argument("--now", required=True, type=instant, help=INSTANT_HELP)
    pl.add_argument(
        "--throughput",
        action="append",
        type=_factor,
        default=[],
        metavar="GPU=FACTOR",
        help="override a GPU's throughput relative to A100, e.g. H100=2.5 (more than 0)",
    )
    signal_and_json(pl)
    pl.set_defaults(run=_plan)


def _demo(args: argparse.Namespace) -> int:
    argv = ["--timeout", f"{args.timeout:g}"]
    if args.exit:
        argv.append("--exit")
    if args.database:
        argv += ["--database", args.database]
    return run_project_module("flows.demo", argv)


DATABASE_SCHEMES = ("postgresql+asyncpg://", "sqlite+aiosqlite://")


def database_url(text: str) -> str:
    """A Prefect server database URL (the drivers Prefect ships with), else a one-line error."""
    if not text.startswith(DATABASE_SCHEMES):
        raise argparse.ArgumentTypeError(
            "not a Prefect database URL: give postgresql+asyncpg://USER:PASSWORD@HOST:PORT/DB "
            "(or sqlite+aiosqlite:///PATH)"
        )
    return text


def _backtest(args: argparse.Namespace) -> int:
    if args.forecast_error is not None and args.resume_overhead > 0:
        raise ValueError(
            "--resume-overhead with --forecast-error is not modelled: drop one of them"
        )
    traces = [read_trace(p, signal=args.signal) for p in args.traces]
    result = backtest(
        traces,
        duration_s=args.duration,
        slack_s=args.slack,
        resume_overhead_s=args.resume_overhead,
        forecast_error=args.forecast_error,
        seed=args.seed,
    )
    if args.json:
        print(_strict_json(result))
        return 0
    print(
        f"{result['jobs']} jobs of {args.duration / 3600:g} h with {args.slack / 3600:g} h slack, "
        f"{result['start']} to {result['end']}, home {result['traces'][0]}"
    )
    for name, policy in result["policies"].items():
        line = f"  {name:14s} {policy['mean_g_per_kwh']:8.1f} g/kWh"
        if "savings" in policy:
            line += f"  savings {policy['savings']:6.1%}"
        if policy.get("share_of_perfect") is not None:
            line += f"  ({policy['share_of_perfect']:.0%} of perfect foresight)"
        print(line)
    return 0


def _plan(args: argparse.Namespace) -> int:
    # Planning allocates a few objects per candidate and per plan, hundreds of thousands on a big
    # queue, and frees them in order: the cyclic collector's passes over them cost a third of
    # the time and found nothing, so it waits until the plans are out.
    with _collector_paused():
        return _plan_queue(args)


def _plan_queue(args: argparse.Namespace) -> int:
    worker_cap()  # a bad CARBONSHIFT_PLAN_WORKERS is refused before any work
    catalog = default_catalog()
    queue = load_jobs(args.jobs)
    workers = worker_count(len(queue.jobs)) if args.json else 1
    if args.throughput:
        catalog = catalog.with_throughput(dict(args.throughput))
    folder = args.traces or bundled_traces_dir()
    # The bundled folder holds zones outside the catalog on purpose; a user's folder is checked.
    by_zone = _traces_for_catalog(
        traces_in(folder), catalog, args.signal, warn_unknown=args.traces is not None
    )
    forecasts = _forecasts_at(by_zone, catalog, args.now, folder)
    scored = score_jobs(queue.jobs, forecasts, now=args.now, catalog=catalog)
    for error in queue.errors:
        print(f"carbonshift: {error}", file=sys.stderr)
    if args.json:
        chunks = _plans_json(
            args.now,
            scored,
            [{"job": e.job, "field": e.field, "message": str(e)} for e in queue.errors],
            workers,
        )
        sys.stdout.writelines(chunks)
        sys.stdout.write("\n")
    else:
        print(format_plans([scored.plan(k) for k in range(len(scored))]))
    return 1 if queue.errors or scored.bad_specs else 0


def _plans_json(
    now: datetime, scored: ScoredQueue, errors: list[dict[str, str]], workers: int = 1
) -> list[str]:
    """`_strict_json({"now": ..., "plans": [plan records], "errors": errors})` in pieces: a
    compact list is its items' texts joined by ",", so the text is the same, without holding
    every record (and their joined text) at once. The records are made by `workers` processes
    (see carbonshift.forks). Nothing is printed before every piece is made, so an error still
    prints no half object."""

    def record(k: int) -> str:
        return ("," if k else "") + _strict_json(plan_record(scored.plan(k)))

    return [
        f'{{"now":{_strict_json(now.isoformat())},"plans":[',
        *texts_in_forks(record, len(scored), workers),
        f'],"errors":{_strict_json(errors)}}}',
    ]


@contextmanager
def _collector_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _traces_for_catalog(
    paths: Sequence[Path], catalog: Catalog, signal: str, *, warn_unknown: bool
) -> dict[str, IntensitySeries]:
    """Traces keyed by zone; a file whose zone no catalog region has is named on stderr."""
    known = sorted({r.em_zone for r in catalog.regions.values()})
    parts: dict[str, list[IntensitySeries]] = {}
    for path in paths:
        series = read_trace(path, signal=signal)
        if series.zone not in known:
            if not warn_unknown:
                continue
            how = (
                "its 'Zone Id' column"
                if series.source.startswith("replay:electricitymaps")
                else "the part of its name before the first '_'"
            )
            _warn(
                f"{path}: zone {series.zone!r} (from {how}) is not the zone of any catalog "
                f"region, so this trace is not used: name the file <ZONE>_<anything>.csv with "
                f"ZONE one of {', '.join(known)}"
            )
            continue
        parts.setdefault(series.zone, []).append(series)
    return {zone: join(found) for zone, found in parts.items()}


def _forecasts_at(
    by_zone: dict[str, IntensitySeries], catalog: Catalog, now: datetime, folder: Path
) -> dict[str, IntensitySeries]:
    """Each region's trace from `now` on; zones whose traces miss `now` are named on stderr."""
    now_s = now.timestamp()
    forecasts = {
        key: s.slice(now_s, s.end_s)
        for key, s in forecasts_for(list(catalog.regions.values()), by_zone).items()
        if s.end_s > now_s
    }
    if not forecasts:
        spans = ", ".join(
            f"{z} {s.start.date()} to {s.end.date()}" for z, s in sorted(by_zone.items())
        )
        raise ValueError(
            f"{folder}: no trace of a catalog zone covers --now {now.isoformat()} "
            f"({spans or 'no usable traces'}): choose --now inside a trace, or pass --traces "
            "with data that covers it"
        )
    for zone, series in sorted(by_zone.items()):
        if series.end_s <= now_s:
            _warn(
                f"the {zone} trace ends at {series.end.isoformat()}, before --now: its regions "
                "are planned on the static default"
            )
        elif series.start_s > now_s:
            _warn(
                f"the {zone} trace starts at {series.start.isoformat()}, after --now: until "
                "then its regions have no trace data"
            )
    return forecasts


def _warn(message: str) -> None:
    print(f"carbonshift: warning: {message}", file=sys.stderr)


# Made once: `plan --json` may fall back to it for many records.
_STRICT = json.JSONEncoder(allow_nan=False, separators=(",", ":"))


def _strict_json(value: Any) -> str:
    """Compact JSON of JSON-mode values (string keys, as every caller passes) without NaN or
    Infinity (which are not JSON): a non-finite figure is a bug, said so. pydantic-core encodes
    first (`plan --json` writes tens of MB; the standard encoder took a seventh of its time);
    where its text holds "NaN" or "Infinity", as a bare number or inside a string, or it cannot
    encode a value, the standard encoder decides."""
    try:
        text = to_json(value, ensure_ascii=True).decode("ascii")
    except PydanticSerializationError:
        text = "NaN"  # a value only the standard encoder knows: let it try
    if "NaN" not in text and "Infinity" not in text:
        return text
    try:
        return _STRICT.encode(value)
    except ValueError:
        raise ValueError(
            "internal error: the result holds a non-finite number; please report it "
            "with the command line"
        ) from None


@cache
def _plan_columns() -> tuple[Column, ...]:
    # The artifacts module (run accounting, the ledger) is imported for the table only.
    from carbonshift.artifacts import Column

    return (
        Column("job", "job", 18),
        Column("regions", "region", 22),
        Column("instance_type", "instance", 14),
        Column("start", "start (UTC)", 17, "%Y-%m-%d %H:%M"),
        Column("g_per_kwh", "g/kWh", 6, ".0f", right=True),
        Column("kg_co2", "kg CO2", 8, ".2f", right=True),
        Column("now_home_kg_co2", "now kg", 8, ".2f", right=True),
        Column("savings_fraction", "saved", 6, ".0%", right=True, missing="n/a"),
        Column("cost_usd", "cost $", 8, ".2f", right=True),
        Column("source", "source", gap="  "),
    )


def format_plans(plans: Sequence[Plan]) -> str:
    """The plans as a table, with the same figures as the plan artifact."""
    from carbonshift.artifacts import plan_figures, text_table

    rows: list[Mapping[str, object] | str] = [
        f"{p.job:18s} not scheduled: {p.reason}"
        if isinstance(p, InfeasiblePlan)
        else {"job": p.job, **asdict(plan_figures(p))}
        for p in plans
    ]
    # A spot plan says where its price came from under its row: a provider's quote or the
    # catalog's estimate; on-demand rows stay as they were.
    return text_table(_plan_columns(), rows, _spot_note)


def _spot_note(row: Mapping[str, object]) -> str:
    return f"\n{'':18s} spot price: {row['spot_price']}" if row.get("spot_price") else ""


# -- argument types: each raises ArgumentTypeError, which argparse prints on one line ---------


def _number(low: float, high: float) -> Callable[[str], float]:
    def number(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not low <= value <= high:  # NaN fails this too
            raise argparse.ArgumentTypeError(
                f"{text[:40]!r}: give a number from {low:g} to {high:g}"
            )
        return value

    return number


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"{text[:40]!r}: give an integer from 0 to 2**63 - 1")
    return value


def _factor(text: str) -> tuple[str, float]:
    model, sep, value = text.partition("=")
    if not sep or not model.strip():
        raise argparse.ArgumentTypeError(f"{text[:40]!r}: write GPU=FACTOR, e.g. H100=2.5")
    try:
        factor = float(value)
    except ValueError:
        factor = math.nan
    if not 0 < factor <= MAX_THROUGHPUT:  # NaN fails this too
        raise argparse.ArgumentTypeError(
            f"{text[:40]!r}: the factor is relative to an A100 and must be more than 0 and at "
            f"most {MAX_THROUGHPUT:g}, e.g. H100=2.5"
        )
    return model.strip(), factor


if __name__ == "__main__":
    sys.exit(main())
