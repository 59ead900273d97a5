"""UK NESO Carbon Intensity API (free, no key): GB national and regional, 30-minute periods.

Zones: `GB` (national), `GB-region-<n>` (regionid 1-17) or `GB-postcode-<outcode>`.
NESO counts operational (direct) emissions, so the signal is `direct`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from carbonshift.catalog import Region
from carbonshift.providers.base import ProviderBadResponse, ProviderRejected
from carbonshift.providers.http import JsonApi, RetryPolicy
from carbonshift.providers.points import clip, instant, number, series_from_points
from carbonshift.providers.secrets import Scrubber, scrubbed
from carbonshift.series import IntensitySeries, Signal

BASE_URL = "https://api.carbonintensity.org.uk"
STEP_S = 1800


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
            periods = _data_list(self.name, self._api.get(f"intensity/{frm}/fw48h"))
        else:
            body = self._api.get(f"regional/intensity/{frm}/fw48h/{kind}/{key}")
            periods = _regional_periods(self.name, body, kind, key)
        return clip(self.name, self._series(zone, periods, "forecast"), start, end)

    @scrubbed
    def actuals(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        kind, _ = _parse_zone(zone)
        if kind != "national":
            raise ProviderRejected(self.name, "regional actuals are not published: use zone GB")
        if end - start <= timedelta(hours=24):
            body = self._api.get(f"intensity/{_iso(end)}/pt24h")
        else:
            body = self._api.get(f"intensity/{_iso(start)}/{_iso(end)}")
        return clip(
            self.name, self._series(zone, _data_list(self.name, body), "actual"), start, end
        )

    def _series(self, zone: str, periods: list[Any], field: str) -> IntensitySeries:
        points = []
        for period in periods:
            intensity = period.get("intensity") if isinstance(period, dict) else None
            if not isinstance(intensity, dict) or "from" not in period:
                raise ProviderBadResponse(self.name, f"{zone}: a period without from/intensity")
            points.append(
                (instant(self.name, period["from"]), number(self.name, intensity.get(field)))
            )
        return series_from_points(
            self.name, zone, points, signal=self.signal, source=f"live:{self.name}", step_s=STEP_S
        )


def _parse_zone(zone: str) -> tuple[str, str]:
    if zone == "GB":
        return "national", ""
    for prefix, kind in (("GB-region-", "regionid"), ("GB-postcode-", "postcode")):
        if zone.startswith(prefix) and zone[len(prefix) :]:
            return kind, zone[len(prefix) :]
    raise ProviderRejected(
        "ukneso", f"unknown zone {zone!r}: use GB, GB-region-<1..17> or GB-postcode-<outcode>"
    )


def _data_list(provider: str, body: Any) -> list[Any]:
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise ProviderBadResponse(provider, "response has no 'data' list")
    items: list[Any] = body["data"]
    return items


def _regional_periods(provider: str, body: Any, kind: str, key: str) -> list[Any]:
    """`/regionid/n` and `/postcode/x` nest the periods under `data.data`; the all-regions
    endpoint lists periods each holding `regions`, from which we pick ours by regionid."""
    data = body.get("data") if isinstance(body, dict) else None
    if isinstance(data, list) and data and isinstance(data[0], dict) and "regions" in data[0]:
        if kind != "regionid":
            raise ProviderBadResponse(provider, "an all-regions response cannot answer a postcode")
        periods = []
        for period in data:
            mine = [r for r in period.get("regions", []) if str(r.get("regionid")) == key]
            if mine:
                periods.append({"from": period.get("from"), "intensity": mine[0].get("intensity")})
        return periods
    if isinstance(data, list) and len(data) == 1:
        data = data[0]  # some responses wrap the region object in a one-item list
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise ProviderBadResponse(provider, "regional response has no 'data.data' list")
    items: list[Any] = data["data"]
    return items


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")
