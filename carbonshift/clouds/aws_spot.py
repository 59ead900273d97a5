"""Spot prices from EC2's price history, as quotes the catalog can apply.

AWS answers each availability zone's price in effect, stamped with when it was set. The region's
quote is the highest of its zones' (RunInstances without a subnet lets AWS pick the zone, so the
plan must not count on the cheapest). A price set longer ago than `max_age_s` counts as no quote
and the catalog's price stays, labelled `catalog` (emulators answer placeholder prices from 2006).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from carbonshift.catalog import PriceQuote
from carbonshift.clouds import aws

log = logging.getLogger("carbonshift.clouds")

SOURCE = "aws:describe_spot_price_history"
DEFAULT_MAX_AGE_S = 7 * 86400.0
PRODUCT = "Linux/UNIX"


def latest_per_type(
    records: Iterable[Mapping[str, Any]], region: str, now_s: float, max_age_s: float
) -> list[PriceQuote]:
    """Quotes from SpotPriceHistory records: per type, each zone's newest price, then the
    highest of those; records older than `max_age_s` or priced <= 0 are left out."""
    newest: dict[tuple[str, str], tuple[float, float]] = {}  # (type, zone) -> (at_s, usd)
    for record in records:
        at_s = record["Timestamp"].timestamp()
        usd = float(record["SpotPrice"])
        if usd <= 0 or now_s - at_s > max_age_s:
            continue
        key = (record["InstanceType"], record["AvailabilityZone"])
        if key not in newest or newest[key][0] < at_s:
            newest[key] = (at_s, usd)
    by_type: dict[str, tuple[float, float]] = {}  # type -> (newest at_s, highest usd)
    for (itype, _zone), (at_s, usd) in newest.items():
        seen_at, seen_usd = by_type.get(itype, (at_s, usd))
        by_type[itype] = (max(seen_at, at_s), max(seen_usd, usd))
    where = aws.region_key(region)
    return [
        PriceQuote(itype, where, usd, SOURCE, at_s)
        for itype, (at_s, usd) in sorted(by_type.items())
    ]


def spot_quotes(
    instance_types: Iterable[str],
    region: str,
    *,
    now: datetime,
    max_age_s: float = DEFAULT_MAX_AGE_S,
    session: Any = None,
    on_error: Callable[[BaseException], None] | None = None,
) -> list[PriceQuote]:
    """Fresh spot quotes for these types in one region (`aws:us-east-1`); types without a
    fresh quote are absent, so `Catalog.spot_price` falls back to the catalog for them. Prices
    are a planning input, not a requirement: when AWS cannot be asked (no credentials, no
    permission, no network) this logs why, tells `on_error`, and returns no quotes."""
    types = sorted(set(instance_types))
    if not types:
        return []
    try:
        ec2 = aws.client("ec2", region, session)
        # The start time asks for what was in effect then and every change since.
        pages = ec2.get_paginator("describe_spot_price_history").paginate(
            InstanceTypes=types,
            ProductDescriptions=[PRODUCT],
            StartTime=datetime.fromtimestamp(now.timestamp() - max_age_s, UTC),
            EndTime=now,
        )
        records = [r for page in pages for r in page.get("SpotPriceHistory", [])]
    except aws.SDK_ERRORS as e:
        log.warning(
            "no spot prices from AWS in %s (%s); the catalog's prices stay", region, aws.describe(e)
        )
        if on_error is not None:
            on_error(e)
        return []
    return latest_per_type(records, region, now.timestamp(), max_age_s)
