"""Electricity Maps API v3: carbon-intensity forecast, history (24 h), past-range and latest."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from pydantic import Field, SecretStr

from carbonshift.catalog import Region
from carbonshift.providers.base import ProviderRejected
from carbonshift.providers.http import JsonApi, RetryPolicy
from carbonshift.providers.points import clip, iso_seconds, series_from_points
from carbonshift.providers.responses import Instant, Number, Response, parse
from carbonshift.providers.secrets import Scrubber, scrubbed
from carbonshift.series import IntensitySeries, Signal

BASE_URL = "https://api.electricitymap.org/v3"
FACTOR_TYPES = {Signal.LCA: "lifecycle", Signal.DIRECT: "direct"}
HISTORY_SPAN = timedelta(hours=24)


class Point(Response):
    """One hour of `forecast`, `history` or `data` (past-range); a null value is a missing one."""

    at: Instant = Field(alias="datetime")
    carbon_intensity: Number = Field(alias="carbonIntensity")


class Forecast(Response):
    forecast: list[Point]


class History(Response):
    history: list[Point]


class PastRange(Response):
    data: list[Point]


class Latest(Response):
    at: Instant = Field(alias="datetime")
    carbon_intensity: Number = Field(default=None, alias="carbonIntensity")


class ElectricityMaps:
    """Zones are Electricity Maps zone keys (`DE`), or `aws:eu-central-1` to let the API map a
    cloud region itself (`dataCenterProvider` + `dataCenterRegion`)."""

    name = "electricitymaps"

    def __init__(
        self,
        token: SecretStr | None,
        *,
        signal: Signal = Signal.LCA,
        base_url: str | None = None,
        by_data_center: bool = False,
        client: httpx.Client | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        scrubber: Scrubber | None = None,
    ) -> None:
        if signal not in FACTOR_TYPES:
            raise ValueError("Electricity Maps serves lca (lifecycle) or direct intensities")
        self.signal = signal
        self.by_data_center = by_data_center
        self._token = token
        self._clock = clock
        self.scrubber = scrubber or Scrubber()
        if token is not None:
            self.scrubber.add(token.get_secret_value())
        self._api = JsonApi(
            self.name, base_url or BASE_URL, client, retry, sleep, scrubber=self.scrubber
        )
        self.cache_id = f"{self.name} {self._api.base_url}"

    @scrubbed
    def zone_for(self, region: Region) -> str:
        return region.key if self.by_data_center else region.em_zone

    @scrubbed
    def forecast(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        body = self._get("carbon-intensity/forecast", zone)
        points = parse(self.name, Forecast, body, zone).forecast
        return clip(self.name, self._series(zone, points), start, end)

    @scrubbed
    def actuals(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        if start >= self._clock() - HISTORY_SPAN:
            body = self._get("carbon-intensity/history", zone)
            points = parse(self.name, History, body, zone).history
        else:
            window = {"start": iso_seconds(start), "end": iso_seconds(end)}
            body = self._get("carbon-intensity/past-range", zone, window)
            points = parse(self.name, PastRange, body, zone).data
        return clip(self.name, self._series(zone, points), start, end)

    @scrubbed
    def latest(self, zone: str) -> tuple[datetime, float | None]:
        latest = parse(self.name, Latest, self._get("carbon-intensity/latest", zone), zone)
        return latest.at, latest.carbon_intensity

    def _get(self, path: str, zone: str, extra: dict[str, str] | None = None) -> object:
        params: dict[str, str | int] = {"emissionFactorType": FACTOR_TYPES[self.signal]}
        provider, sep, region = zone.partition(":")
        if sep:
            params |= {"dataCenterProvider": provider, "dataCenterRegion": region}
        else:
            params["zone"] = zone
        params |= extra or {}
        if self._token is None:
            raise ProviderRejected(self.name, "no API token: set ELECTRICITYMAPS_API_TOKEN")
        headers = {"auth-token": self._token.get_secret_value()}
        return self._api.get(path, params=params, headers=headers)

    def _series(self, zone: str, points: list[Point]) -> IntensitySeries:
        return series_from_points(
            self.name,
            zone,
            [(p.at, p.carbon_intensity) for p in points],
            signal=self.signal,
            source=f"live:{self.name}",
        )
