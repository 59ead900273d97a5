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

import boto3  # type: ignore[import-untyped]
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
        witness = _Witness(session)
        found = spot_quotes(asked, region, now=now, max_age_s=max_age_s, session=witness)
        quotes += found
        if witness.error is not None:
            missing[region] = _why(witness.error, region)
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


class _Witness:
    """A boto3 session that keeps the error of the last call made through its clients.

    `spot_quotes` answers no quotes for any SDK error (a plan must not fail for a price), so
    the error is read off the client's own events to say why, and which permission is missing.
    """

    def __init__(self, session: Any = None) -> None:
        self._session = session or boto3.Session()
        self.error: BaseException | None = None

    def client(self, service: str, **options: Any) -> Any:
        made = self._session.client(service, **options)
        made.meta.events.register("after-call", self._answered)
        made.meta.events.register("after-call-error", self._failed)
        return made

    def _answered(self, http_response: Any, parsed: Any, model: Any, **_: Any) -> None:
        # botocore raises the refusal right after this event, from these very values.
        if http_response.status_code >= 300:
            self.error = aws.ClientError(parsed, model.name)

    def _failed(self, exception: BaseException, **_: Any) -> None:
        self.error = exception  # no connection, no credentials: nothing was answered
