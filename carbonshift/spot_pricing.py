"""Live spot prices for planning: which (region, instance type) pairs to ask AWS about, and the
quotes it answers, with why a region got none.

Prices are a planning input, not a requirement: a region AWS does not answer for (no
credentials, no permission, no network, no fresh price) keeps the catalog's spot price, and the
plan labels every spot price with where it came from. GCP has no spot-price API reachable from
here (the Cloud Billing Catalog is a network service with its own credentials): its spot prices
are the catalog's, labelled so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from carbonshift.catalog import Catalog, PriceQuote
from carbonshift.clouds import aws, iam
from carbonshift.clouds.aws_spot import spot_quotes
from carbonshift.job import JobSpec, JobSpecError, resolve

OPERATION = "DescribeSpotPriceHistory"
PERMISSION = iam.action("ec2", OPERATION)


class SpotPricing(BaseModel):
    """Whether planning asks AWS for spot prices (`describe_spot_price_history`, credentials
    from the SDK's default chain) instead of using the catalog's."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    enabled: bool = Field(
        default=False, description="ask AWS for the spot prices of interruptible jobs"
    )
    max_age_s: float = Field(
        default=3600.0,
        gt=0,
        le=90 * 86400,
        description="a price AWS set longer ago than this (s) counts as none: the catalog's "
        "stays (AWS keeps 90 days of history)",
    )


@dataclass(frozen=True)
class SpotFetch:
    quotes: list[PriceQuote]
    # Region -> why it has no quote for some of its types (the catalog's price stays there).
    missing: dict[str, str]


def spot_candidates(
    jobs: Sequence[JobSpec], catalog: Catalog, now: datetime
) -> dict[str, set[str]]:
    """AWS region key -> the instance types interruptible jobs may run on there. Jobs that
    cannot be resolved are left out (the planner refuses them with the reason)."""
    wanted: dict[str, set[str]] = {}
    for spec in jobs:
        if not spec.interruptible:
            continue
        try:
            job = resolve(spec, catalog, now)
        except JobSpecError:
            continue
        for c in job.candidates:
            if c.region.provider == "aws":
                wanted.setdefault(c.region.key, set()).add(c.instance_type.name)
    return wanted


def fetch_spot_quotes(
    wanted: Mapping[str, Iterable[str]],
    *,
    now: datetime,
    max_age_s: float,
    session: Any = None,
) -> SpotFetch:
    """Quotes for each region's types, one `describe_spot_price_history` listing per region;
    a region whose call fails or has no fresh price is named in `missing` with why."""
    quotes: list[PriceQuote] = []
    missing: dict[str, str] = {}
    for region, types in sorted(wanted.items()):
        asked = sorted(set(types))
        errors: list[BaseException] = []
        found = spot_quotes(
            asked, region, now=now, max_age_s=max_age_s, session=session, on_error=errors.append
        )
        quotes += found
        if errors:
            missing[region] = _why(errors[-1], region)
            continue
        stale = sorted(set(asked) - {q.instance_type for q in found})
        if stale:
            missing[region] = (
                f"no spot price set within {max_age_s:g} s for {', '.join(stale)} in {region}"
            )
    return SpotFetch(quotes, missing)


def _why(error: BaseException, region: str) -> str:
    if aws.is_access_error(error):
        how = (
            "no AWS credentials found (environment, ~/.aws or an instance role)"
            if isinstance(error, aws.NoCredentialsError)
            else aws.describe(error)
        )
        return f"AWS refused the spot price history in {region}: needs {PERMISSION} ({how})"
    return f"no spot prices from AWS in {region}: {aws.describe(error)}"
