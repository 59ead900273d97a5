"""Argument types and options shared by the CLI's commands: each type raises
ArgumentTypeError, which argparse prints on one line naming the option."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import datetime

from carbonshift.series import Signal
from carbonshift.units import parse_duration_s, parse_utc_instant


def duration(*, positive: bool = False, example: str = "4h") -> Callable[[str], float]:
    """Seconds from `4h`, `90min`, `3600`...; with `positive`, more than 0."""

    def parse(text: str) -> float:
        try:
            seconds = parse_duration_s(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        if positive and seconds <= 0:
            raise argparse.ArgumentTypeError(f"{text!r}: must be more than 0, e.g. {example}")
        return seconds

    return parse


def instant(text: str) -> datetime:
    try:
        return parse_utc_instant(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def signal_and_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--signal",
        choices=[Signal.LCA.value, Signal.DIRECT.value],
        default=Signal.LCA.value,
        help="which Electricity Maps column to read (default: lca)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
