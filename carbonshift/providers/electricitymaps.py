"""Electricity Maps API v3: carbon-intensity forecast, history (24 h), past-range and latest."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import SecretStr

from carbonshift.catalog import Region
from carbonshift.providers.base import ProviderBadResponse, ProviderRejected
from carbonshift.providers.http import JsonApi, RetryPolicy
from carbonshift.providers.points import clip, instant, iso_seconds, number, series_from_points
from carbonshift.providers.secrets import Scrubber, scrubbed
from carbonshift.series import IntensitySeries, Signal

BASE_URL = "https://api.electricitymap.org/v3"
FACTOR_TYPES = {Signal.LCA: "lifecycle", Signal.DIRECT: "direct"}
HISTORY_SPAN = timedelta(hours=24)


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
        return clip(self.name, self._series(zone, _list(self.name, body, "forecast")), start, end)

    @scrubbed
    def actuals(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        if start >= self._clock() - HISTORY_SPAN:
            items = _list(self.name, self._get("carbon-intensity/history", zone), "history")
        else:
            window = {"start": iso_seconds(start), "end": iso_seconds(end)}
            items = _list(self.name, self._get("carbon-intensity/past-range", zone, window), "data")
        return clip(self.name, self._series(zone, items), start, end)

    @scrubbed
    def latest(self, zone: str) -> tuple[datetime, float | None]:
        body = self._get("carbon-intensity/latest", zone)
        if not isinstance(body, dict):
            raise ProviderBadResponse(self.name, f"{zone}: latest is not an object")
        return instant(self.name, body.get("datetime")), number(
            self.name, body.get("carbonIntensity")
        )

    def _get(self, path: str, zone: str, extra: dict[str, str] | None = None) -> Any:
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

    def _series(self, zone: str, items: list[Any]) -> IntensitySeries:
        points = []
        for item in items:
            if (
                not isinstance(item, dict)
                or "datetime" not in item
                or "carbonIntensity" not in item
            ):
                raise ProviderBadResponse(
                    self.name, f"{zone}: a point without datetime/carbonIntensity: {item!r}"
                )
            points.append(
                (instant(self.name, item["datetime"]), number(self.name, item["carbonIntensity"]))
            )
        return series_from_points(
            self.name, zone, points, signal=self.signal, source=f"live:{self.name}"
        )


def _list(provider: str, body: Any, key: str) -> list[Any]:
    if not isinstance(body, dict) or not isinstance(body.get(key), list):
        raise ProviderBadResponse(provider, f"response has no '{key}' list")
    items: list[Any] = body[key]
    return items
