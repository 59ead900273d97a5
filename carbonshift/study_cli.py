"""`carbonshift baseline` (a job's emissions for every start hour of the recorded history, per
region) and `carbonshift report` (the run ledger over a period). Both compute here, in the core:
no Prefect, no server; the flows `baseline-study` and `emissions-report` do the same for the
deployments."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from carbonshift import baseline, report
from carbonshift.catalog import default_catalog
from carbonshift.cli_args import duration, instant, signal_and_json
from carbonshift.units import DURATION_HELP, INSTANT_HELP


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bl = sub.add_parser(
        "baseline",
        help="a job's emissions for every start hour of the recorded history, per region",
    )
    bl.add_argument(
        "--region",
        action="append",
        default=[],
        help="e.g. aws:eu-west-2 (repeat; the first is home, its median start is the usual "
        "slot); with --ledger-record, the record's region by default",
    )
    bl.add_argument("--energy-kwh", type=_kwh, help="the job's energy (kWh), with --duration")
    bl.add_argument("--duration", type=_duration, help=f"the job's length: {DURATION_HELP}")
    bl.add_argument(
        "--segment",
        action="append",
        type=_segment,
        default=[],
        metavar="DURATION:POWER_W",
        help="a stretch at constant power, e.g. 2h:8000 (repeat, in order) instead of "
        "--energy-kwh/--duration",
    )
    bl.add_argument("--ledger-record", metavar="RUN_ID", help="the profile of a recorded run")
    bl.add_argument("--store", help="the ledger's store (with --ledger-record): a folder or URI")
    bl.add_argument(
        "--traces",
        type=Path,
        help="folder of CSV traces named by zone (default: the bundled 2023 traces)",
    )
    bl.add_argument("--since", type=instant, help=f"history from: {INSTANT_HELP}")
    bl.add_argument("--until", type=instant, help="history until (exclusive), same form")
    bl.add_argument(
        "--local-time",
        action="store_true",
        help="hours of day in each region's local time (default UTC)",
    )
    bl.add_argument("--chart", type=Path, metavar="FILE", help="write the heat-map (SVG) here")
    signal_and_json(bl)
    bl.set_defaults(run=_baseline)

    rp = sub.add_parser(
        "report",
        help="emissions, savings and delays over a period of the run ledger "
        f"(exit {report.EMPTY_EXIT_CODE} when the period holds no run)",
    )
    rp.add_argument("--store", required=True, help="the ledger's store: a folder or URI")
    rp.add_argument(
        "--days",
        type=float,
        help=f"the last DAYS up to --until (default {report.DEFAULT_DAYS})",
    )
    rp.add_argument("--since", type=instant, help=f"period from: {INSTANT_HELP}")
    rp.add_argument("--until", type=instant, help="period until (exclusive; default now)")
    rp.add_argument(
        "--traces",
        type=Path,
        metavar="DIR",
        help="CSV traces of actual intensity named by zone: complete the pending "
        "counterfactuals they cover (run-now; the best slot in hindsight once the deadline "
        "has passed), in the report only",
    )
    rp.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help=f"write {', '.join(report.FILES)} there",
    )
    rp.add_argument("--json", action="store_true", help="print one JSON object")
    rp.set_defaults(run=_report)


def _baseline(args: argparse.Namespace) -> int:
    request = baseline.StudyRequest(
        regions=args.region,
        energy_kwh=args.energy_kwh,
        duration_s=args.duration,
        segments=[baseline.Segment(duration_s=d, power_w=w) for d, w in args.segment] or None,
        ledger_record=args.ledger_record,
        store=args.store,
        traces=str(args.traces) if args.traces else None,
        since=args.since,
        until=args.until,
        local_time=args.local_time,
        signal=args.signal,
    )
    result = baseline.run(request, default_catalog())
    written: list[Path] = []
    if args.chart:
        from carbonshift.study_charts import baseline_heatmap_svg  # matplotlib: only when asked

        args.chart.write_text(baseline_heatmap_svg(result), encoding="utf-8")
        written.append(args.chart)
    # Where the files went, as `report` says it: "wrote PATH" lines, or `files` in the JSON.
    if args.json:
        out: dict[str, Any] = result.as_json()
        out["files"] = [str(p) for p in written]
        print(json.dumps(out, allow_nan=False))
    else:
        print(baseline.format_study(result))
        for path in written:
            print(f"wrote {path} (heat-map)")
    return 0


def _report(args: argparse.Namespace) -> int:
    since, until = report.period(datetime.now(UTC), args.days, args.since, args.until)
    result = report.load(args.store, since, until, args.traces)
    if result.empty:
        print(f"carbonshift: {result.empty_message()}", file=sys.stderr)
        return report.EMPTY_EXIT_CODE
    written = report.write(result, args.out) if args.out else []
    if args.json:
        out: dict[str, Any] = report.as_json(result)
        out["files"] = [str(p) for p in written]
        print(json.dumps(out, allow_nan=False))
    else:
        print(report.markdown(result), end="")
        for path in written:
            print(f"wrote {path}")
    return 0


def _kwh(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):  # NaN fails this too
        raise argparse.ArgumentTypeError(f"{text[:40]!r}: give 0 or more kWh, e.g. 40")
    return value


_duration = duration(positive=True)


def _segment(text: str) -> tuple[float, float]:
    length, sep, power = text.rpartition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text[:40]!r}: write DURATION:POWER_W, e.g. 2h:8000")
    duration_s = _duration(length)
    try:
        power_w = float(power)
    except ValueError:
        power_w = -1.0
    if not 0 <= power_w < float("inf"):
        raise argparse.ArgumentTypeError(
            f"{text[:40]!r}: the power after ':' is watts, 0 or more, e.g. 2h:8000"
        )
    return duration_s, power_w
