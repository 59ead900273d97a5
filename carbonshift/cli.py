"""`carbonshift` command line: backtests and plans on recorded traces."""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from carbonshift import forecast_cli
from carbonshift.backtest import backtest
from carbonshift.catalog import CatalogError, default_catalog
from carbonshift.job import load_jobs
from carbonshift.plan import Plan
from carbonshift.planner import forecasts_for, plan_jobs
from carbonshift.providers import ForecastUnavailable, ProviderError
from carbonshift.series import SeriesError, Signal
from carbonshift.traces import bundled_traces_dir, read_trace, read_traces, traces_in
from carbonshift.units import parse_duration_s, parse_instant


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
        return code
    except (
        SeriesError,
        CatalogError,
        ProviderError,
        ForecastUnavailable,
        ValueError,
        OSError,
    ) as e:
        print(f"carbonshift: error: {e}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="carbonshift", description=__doc__)
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    bt = sub.add_parser("backtest", help="compare shifting policies on recorded traces")
    bt.add_argument(
        "traces",
        nargs="+",
        metavar="TRACE",
        type=Path,
        help="CSV traces; the first is the home region",
    )
    bt.add_argument("--duration", required=True, type=parse_duration_s, help="job length, e.g. 4h")
    bt.add_argument(
        "--slack", required=True, type=parse_duration_s, help="how long a job may wait, e.g. 24h"
    )
    bt.add_argument(
        "--forecast-error",
        type=float,
        default=None,
        metavar="E",
        help="relative forecast error one day ahead, e.g. 0.1",
    )
    bt.add_argument("--seed", type=int, default=0)
    bt.add_argument(
        "--resume-overhead",
        type=parse_duration_s,
        default=0.0,
        help="run time lost per resume of an interruptible job, e.g. 10m",
    )
    _signal_and_json(bt)
    bt.set_defaults(run=_backtest)

    forecast_cli.add_parser(sub)

    demo = sub.add_parser(
        "demo", help="local Prefect server + worker: plan the example queue, run the urgent job"
    )
    demo.add_argument(
        "--exit",
        action="store_true",
        help="stop everything when the urgent run ends (non-zero unless completed)",
    )
    demo.add_argument("--timeout", default="600", help="seconds to wait (default 600)")
    demo.set_defaults(run=_demo)

    pl = sub.add_parser("plan", help="plan a job file against recorded traces at a given moment")
    pl.add_argument(
        "--traces",
        type=Path,
        default=None,
        help="folder of CSV traces named by zone (default: the bundled 2023 traces)",
    )
    pl.add_argument("--jobs", required=True, type=Path, help="job file (YAML)")
    pl.add_argument(
        "--now", required=True, type=parse_instant, help="ISO 8601, e.g. 2023-06-01T00:00Z"
    )
    pl.add_argument(
        "--throughput",
        action="append",
        default=[],
        metavar="GPU=FACTOR",
        help="override a GPU's throughput relative to A100, e.g. H100=2.5",
    )
    _signal_and_json(pl)
    pl.set_defaults(run=_plan)
    return parser


def _demo(args: argparse.Namespace) -> int:
    # The demo drives Prefect, which the core never imports: it runs as its own process.
    cmd = [sys.executable, "-m", "flows.demo", "--timeout", args.timeout]
    if args.exit:
        cmd.append("--exit")
    proc = subprocess.Popen(cmd)
    forward = signal.signal(signal.SIGTERM, lambda *_: proc.send_signal(signal.SIGTERM))
    try:
        while True:
            try:
                code = proc.wait()
                break
            except KeyboardInterrupt:
                # Ctrl-C reached the demo too (one process group): it stops its stack. Wait for
                # that; killing it now would orphan its server, worker and flow runs.
                continue
    finally:
        signal.signal(signal.SIGTERM, forward)
    return 128 - code if code < 0 else code


def _signal_and_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--signal",
        choices=[Signal.LCA.value, Signal.DIRECT.value],
        default=Signal.LCA.value,
        help="which Electricity Maps column to read (default: lca)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _backtest(args: argparse.Namespace) -> int:
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
        print(json.dumps(result))
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
    catalog = default_catalog()
    if args.throughput:
        catalog = catalog.with_throughput(dict(_factor(t) for t in args.throughput))
    queue = load_jobs(args.jobs)
    folder = args.traces or bundled_traces_dir()
    by_zone = read_traces(traces_in(folder), signal=args.signal)
    forecasts = {
        key: s.slice(args.now.timestamp(), s.end_s)
        for key, s in forecasts_for(list(catalog.regions.values()), by_zone).items()
        if s.end_s > args.now.timestamp()
    }
    plans = plan_jobs(queue.jobs, forecasts, now=args.now, catalog=catalog)
    for error in queue.errors:
        print(f"carbonshift: {error}", file=sys.stderr)
    if args.json:
        print(
            json.dumps(
                {
                    "now": args.now.isoformat(),
                    "plans": [p.model_dump(mode="json") for p in plans],
                    "errors": [
                        {"job": e.job, "field": e.field, "message": str(e)} for e in queue.errors
                    ],
                }
            )
        )
    else:
        print(format_plans(plans))
    bad_specs = queue.errors or any(p.field for p in plans)
    return 1 if bad_specs else 0


def format_plans(plans: Sequence[Plan]) -> str:
    header = (
        f"{'job':18s} {'region':22s} {'instance':14s} {'start (UTC)':17s} {'g/kWh':>6s} "
        f"{'kg CO2':>8s} {'now kg':>8s} {'saved':>6s} {'cost $':>8s}  source"
    )
    lines = [header, "-" * len(header)]
    for p in plans:
        if not p.feasible or p.chosen is None or p.explanation is None:
            lines.append(f"{p.job:18s} not scheduled: {p.reason}")
            continue
        c, x = p.chosen, p.explanation
        kg = sum(s.emissions_kg for s in p.shards) if p.shards else c.emissions_kg
        lines.append(
            f"{p.job:18s} {c.region:22s} {c.instance_type:14s} "
            f"{c.start.strftime('%Y-%m-%d %H:%M'):17s} {c.mean_g_per_kwh:6.0f} {kg:8.2f} "
            f"{x.now_home.emissions_kg:8.2f} {x.savings_fraction:6.0%} {c.cost_usd:8.2f}  "
            f"{c.source}"
        )
    return "\n".join(lines)


def _factor(text: str) -> tuple[str, float]:
    model, sep, value = text.partition("=")
    if not sep:
        raise ValueError(f"--throughput {text!r}: write GPU=FACTOR, e.g. H100=2.5")
    return model.strip(), float(value)


if __name__ == "__main__":
    sys.exit(main())
