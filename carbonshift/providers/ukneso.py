"""UK NESO Carbon Intensity API (free, no key): GB national and regional, 30-minute periods.

Zones: `GB` (national), `GB-region-<n>` (regionid 1-17) or `GB-postcode-<outcode>`.
NESO counts operational (direct) emissions, so the signal is `direct`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated

import httpx
from pydantic import Discriminator, Field, Tag

from carbonshift.catalog import Region
from carbonshift.providers.base import ProviderBadResponse, ProviderRejected
from carbonshift.providers.http import JsonApi, RetryPolicy
from carbonshift.providers.points import clip, series_from_points
from carbonshift.providers.responses import TAG, Instant, Number, Response, parse
from carbonshift.providers.secrets import Scrubber, scrubbed
from carbonshift.series import IntensitySeries, Signal

BASE_URL = "https://api.carbonintensity.org.uk"
STEP_S = 1800


class Intensity(Response):
    forecast: Number = None
    actual: Number = None  # null until the period has been measured


class Period(Response):
    from_: Instant = Field(alias="from")
    intensity: Intensity


class National(Response):
    """`/intensity/{from}/fw48h`, `/intensity/{to}/pt24h`, `/intensity/{from}/{to}`."""

    data: list[Period]


class RegionIntensity(Response):
    regionid: int | str
    intensity: Intensity


class RegionsPeriod(Response):
    """A period of the all-regions response: every region's intensity for it."""

    from_: Instant = Field(alias="from")
    regions: list[RegionIntensity]


class RegionPeriods(Response):
    """One region (`/regionid/n`, `/postcode/x`): its periods."""

    data: list[Period]


def _regional_shape(data: object) -> str:
    if isinstance(data, list) and data and isinstance(data[0], dict) and "regions" in data[0]:
        return f"{TAG}all-regions"
    return f"{TAG}one-region-in-a-list" if isinstance(data, list) else f"{TAG}one-region"


class Regional(Response):
    """`/regional/intensity/{from}/fw48h/{regionid|postcode}/{key}` nests one region's periods
    under `data.data` (some answers wrap that region in a one-item list); the all-regions shape
    lists periods each holding `regions`."""

    data: Annotated[
        Annotated[list[RegionsPeriod], Tag(f"{TAG}all-regions")]
        | Annotated[tuple[RegionPeriods], Tag(f"{TAG}one-region-in-a-list")]
        | Annotated[RegionPeriods, Tag(f"{TAG}one-region")],
        Discriminator(_regional_shape),
    ]


class UkNeso:
    name = "ukneso"
    signal = Signal.DIRECT

    def __init__(
        self,
        *,
        base_url: str | None = None,
        client: httpx.Client | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        scrubber: Scrubber | None = None,
    ) -> None:
        self.scrubber = scrubber or Scrubber()
        self._api = JsonApi(
            self.name, base_url or BASE_URL, client, retry, sleep, scrubber=self.scrubber
        )
        self.cache_id = f"{self.name} {self._api.base_url}"

    @scrubbed
    def zone_for(self, region: Region) -> str:
        if region.em_zone != "GB":
            raise ProviderRejected(self.name, f"{region.key} is not in Great Britain")
        return "GB"

    @scrubbed
    def forecast(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        kind, key = _parse_zone(zone)
        frm = _iso(start)
        if kind == "national":
            body = self._api.get(f"intensity/{frm}/fw48h")
            periods = _pairs(parse(self.name, National, body, zone).data)
        else:
            body = self._api.get(f"regional/intensity/{frm}/fw48h/{kind}/{key}")
            periods = self._regional(zone, parse(self.name, Regional, body, zone), kind, key)
        points = [(moment, intensity.forecast) for moment, intensity in periods]
        return clip(self.name, self._series(zone, points), start, end)

    @scrubbed
    def actuals(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        kind, _ = _parse_zone(zone)
        if kind != "national":
            raise ProviderRejected(self.name, "regional actuals are not published: use zone GB")
        if end - start <= timedelta(hours=24):
            body = self._api.get(f"intensity/{_iso(end)}/pt24h")
        else:
            body = self._api.get(f"intensity/{_iso(start)}/{_iso(end)}")
        periods = parse(self.name, National, body, zone).data
        points = [(p.from_, p.intensity.actual) for p in periods]
        return clip(self.name, self._series(zone, points), start, end)

    def _regional(
        self, zone: str, regional: Regional, kind: str, key: str
    ) -> list[tuple[datetime, Intensity]]:
        """Our region's periods; from the all-regions shape, picked by regionid."""
        data = regional.data
        if isinstance(data, tuple):
            data = data[0]
        if isinstance(data, RegionPeriods):
            return _pairs(data.data)
        if kind != "regionid":
            raise ProviderBadResponse(
                self.name, f"{zone}: an all-regions response cannot answer a postcode"
            )
        return [
            (period.from_, mine[0].intensity)
            for period in data
            if (mine := [r for r in period.regions if str(r.regionid) == key])
        ]

    def _series(self, zone: str, points: list[tuple[datetime, float | None]]) -> IntensitySeries:
        return series_from_points(
            self.name, zone, points, signal=self.signal, source=f"live:{self.name}", step_s=STEP_S
        )


def _pairs(periods: list[Period]) -> list[tuple[datetime, Intensity]]:
    return [(p.from_, p.intensity) for p in periods]


def _parse_zone(zone: str) -> tuple[str, str]:
    if zone == "GB":
        return "national", ""
    for prefix, kind in (("GB-region-", "regionid"), ("GB-postcode-", "postcode")):
        if zone.startswith(prefix) and zone[len(prefix) :]:
            return kind, zone[len(prefix) :]
    raise ProviderRejected(
        "ukneso", f"unknown zone {zone!r}: use GB, GB-region-<1..17> or GB-postcode-<outcode>"
    )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")
