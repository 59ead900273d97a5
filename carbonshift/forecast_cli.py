"""`carbonshift forecast`: one zone's forecast through a provider chain, as one JSON object."""

from __future__ import annotations

import argparse
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from carbonshift.catalog import default_catalog
from carbonshift.config import ForecastConfig
from carbonshift.providers import NAMES, Credentials, ProviderSettings, Served, build_chain
from carbonshift.providers.http import RetryPolicy
from carbonshift.series import Signal
from carbonshift.units import from_epoch_s

MAX_HOURS = 8760.0  # a year: no provider forecasts further, and replay traces are a year long
MAX_RETRIES = 10  # with the backoff and Retry-After waits, minutes per provider at most


def add_parser(sub: Any) -> None:
    fc = sub.add_parser("forecast", help="fetch one zone's forecast through a provider chain")
    fc.add_argument(
        "--provider",
        required=True,
        metavar="NAME[,NAME...]",
        help=f"a provider or a comma-separated chain of: {', '.join(NAMES)}",
    )
    where = fc.add_mutually_exclusive_group(required=True)
    where.add_argument("--zone", help="the provider's zone id, e.g. DE, CAISO_NORTH, GB")
    where.add_argument("--region", help="a catalog region, e.g. aws:us-west-2 or gcp:europe-west4")
    fc.add_argument(
        "--hours",
        type=float,
        default=48.0,
        help=f"how far ahead, more than 0 and at most {MAX_HOURS:g} (default 48)",
    )
    fc.add_argument(
        "--base-url",
        type=_base_url,
        help="override the providers' API address (self-hosted, proxy): http(s)://host[:port]",
    )
    fc.add_argument(
        "--signal",
        choices=[Signal.LCA.value, Signal.DIRECT.value],
        default=Signal.LCA.value,
        help="Electricity Maps and replay column",
    )
    fc.add_argument("--traces", type=Path, default=None, help="replay: folder of CSV traces")
    fc.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="forecast cache (default $CARBONSHIFT_CACHE_DIR or ~/.cache/carbonshift)",
    )
    fc.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    fc.add_argument(
        "--retries",
        type=_retries,
        default=3,
        help=f"retries per provider on timeouts, 5xx and 429, 0 to {MAX_RETRIES} (default 3)",
    )
    fc.add_argument("--json", action="store_true", help="print one JSON object")
    fc.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    hours: float = args.hours
    if not (math.isfinite(hours) and 0 < hours <= MAX_HOURS):
        raise ValueError(
            f"--hours {args.hours:g} is out of range: give a number of hours above 0 "
            f"and at most {MAX_HOURS:g}, e.g. --hours 48"
        )
    config = forecast_config(args)
    catalog = default_catalog()
    settings = ProviderSettings(
        config,
        credentials=Credentials.from_env(),
        catalog=catalog,
        retry=RetryPolicy(attempts=args.retries + 1),
    )
    chain = build_chain(settings, None if args.no_cache else config.cache())
    target = catalog.region(args.region) if args.region is not None else args.zone
    start = datetime.now(UTC)
    served = chain.forecast(target, start, start + timedelta(hours=hours))
    result = as_json(served)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['zone']} from {result['provider']} ({result['source']}, "
            f"{result['signal']}, g/kWh):"
        )
        for point in result["points"]:
            print(f"  {point['start']}  {point['g_per_kwh']:8.1f}")
        for failure in served.failures:
            print(f"  (skipped {failure})")
    return 0


# Options by configuration field, to name the option a validation error is about.
OPTIONS = {
    "providers": "--provider",
    "base_urls": "--base-url",
    "signal": "--signal",
    "traces_dir": "--traces",
    "cache_dir": "--cache-dir",
}


def forecast_config(args: argparse.Namespace) -> ForecastConfig:
    """The options as the flows' `ForecastConfig`, validated the same way; a refusal is one
    line naming the option and the fix."""
    names = [n.strip() for n in args.provider.split(",") if n.strip()]
    try:
        return ForecastConfig(
            providers=names,
            signal=Signal(args.signal),
            base_urls={n: args.base_url for n in names} if args.base_url else {},
            cache_dir=str(args.cache_dir) if args.cache_dir is not None else None,
            traces_dir=str(args.traces) if args.traces is not None else None,
        )
    except ValidationError as e:
        raise ValueError(_option_error(e)) from None


def _option_error(error: ValidationError) -> str:
    first = error.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else ""
    if first["type"] == "empty_chain":
        return f"--provider: give a provider or a comma-separated chain of: {', '.join(NAMES)}"
    if first["type"] == "self_hosted_needs_address":
        return "--provider carbon-aware-sdk is self-hosted: give its address with --base-url"
    return f"{OPTIONS.get(field, field)}: {first['msg']}"


def as_json(served: Served) -> dict[str, Any]:
    series = served.series
    return {
        "provider": served.provider,
        "zone": served.zone,
        "signal": series.signal.value,
        "source": served.source,
        "points": [
            {"start": from_epoch_s(int(t)).isoformat(), "g_per_kwh": float(v)}
            for t, v in zip(series.times_s, series.g_per_kwh, strict=True)
        ],
        "series_source": series.source,
        "failures": list(served.failures),
    }


def _retries(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_RETRIES:
        raise argparse.ArgumentTypeError(
            f"{text[:40]!r}: give a whole number of retries from 0 to {MAX_RETRIES}"
        )
    return value


def _base_url(text: str) -> str:
    try:
        url = httpx.URL(text)
        ok = url.scheme in ("http", "https") and bool(url.host)
    except (httpx.InvalidURL, TypeError, ValueError):
        ok = False
    if not ok:
        shown = "the address given" if "@" in text else repr(text[:60])  # may hold a password
        raise argparse.ArgumentTypeError(
            f"{shown} is not an http(s) address: write e.g. http://127.0.0.1:8080 or "
            "https://proxy.example/v3"
        )
    return text
