"""Green Software Foundation Carbon Aware SDK WebAPI (self-hosted).

Its signal and units depend on the SDK's data source: say which with `signal` (WattTime-backed
deployments serve marginal rates) and `units` (`g_per_kwh`, or `lbs_per_mwh` to convert).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal

import httpx

from carbonshift.catalog import Region
from carbonshift.providers.base import ProviderBadResponse
from carbonshift.providers.http import JsonApi, RetryPolicy
from carbonshift.providers.points import clip, instant, iso_seconds, number, series_from_points
from carbonshift.providers.secrets import Scrubber, scrubbed
from carbonshift.series import IntensitySeries, Signal
from carbonshift.units import g_per_kwh_from_lbs_per_mwh

_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})")


class CarbonAwareSdk:
    name = "carbon-aware-sdk"

    def __init__(
        self,
        base_url: str,
        *,
        signal: Signal = Signal.LCA,
        units: Literal["g_per_kwh", "lbs_per_mwh"] = "g_per_kwh",
        client: httpx.Client | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        scrubber: Scrubber | None = None,
    ) -> None:
        self.signal = signal
        self._units = units
        self.scrubber = scrubber or Scrubber()
        self._api = JsonApi(self.name, base_url, client, retry, sleep, scrubber=self.scrubber)
        self.cache_id = f"{self.name} {self._api.base_url} {units}"

    @scrubbed
    def zone_for(self, region: Region) -> str:
        return region.name  # configure the SDK's location source with your cloud's region names

    @scrubbed
    def forecast(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        body = self._api.get(
            "emissions/forecasts/current",
            params={
                "location": zone,
                "dataStartAt": iso_seconds(start),
                "dataEndAt": iso_seconds(end),
            },
        )
        if not isinstance(body, list) or not body or not isinstance(body[0], dict):
            raise ProviderBadResponse(self.name, f"{zone}: expected a list of forecasts")
        data = body[0].get("forecastData")
        if not isinstance(data, list):
            raise ProviderBadResponse(self.name, f"{zone}: forecast has no forecastData list")
        points = [
            (
                instant(self.name, _field(self.name, p, "timestamp")),
                self._value(_field(self.name, p, "value")),
            )
            for p in data
        ]
        step = _minutes(data)
        return clip(self.name, self._series(zone, points, step), start, end)

    @scrubbed
    def actuals(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        body = self._api.get(
            "emissions/bylocation",
            params={
                "location": zone,
                "time": iso_seconds(start),
                "toTime": iso_seconds(end),
            },
        )
        if not isinstance(body, list):
            raise ProviderBadResponse(self.name, f"{zone}: expected a list of emissions data")
        points = [
            (
                instant(self.name, _field(self.name, p, "time")),
                self._value(_field(self.name, p, "rating")),
            )
            for p in body
        ]
        points.sort(key=lambda p: p[0])
        step = _timespan_s(body[0].get("duration")) if body and isinstance(body[0], dict) else None
        return clip(self.name, self._series(zone, points, step), start, end)

    def _value(self, raw: object) -> float | None:
        value = number(self.name, raw)
        if value is not None and self._units == "lbs_per_mwh":
            return g_per_kwh_from_lbs_per_mwh(value)
        return value

    def _series(
        self, zone: str, points: list[tuple[datetime, float | None]], step_s: int | None
    ) -> IntensitySeries:
        return series_from_points(
            self.name, zone, points, signal=self.signal, source=f"live:{self.name}", step_s=step_s
        )


def _field(provider: str, item: Any, key: str) -> Any:
    if not isinstance(item, dict) or key not in item:
        raise ProviderBadResponse(provider, f"a data point without '{key}'")
    return item[key]


def _minutes(data: list[Any]) -> int | None:
    first = data[0] if data and isinstance(data[0], dict) else {}
    duration = first.get("duration")
    return int(duration) * 60 if isinstance(duration, int | float) and duration > 0 else None


def _timespan_s(text: object) -> int | None:
    """.NET TimeSpan text (`01:00:00`, `1.00:00:00`) in seconds."""
    match = _TIMESPAN.match(text) if isinstance(text, str) else None
    if not match:
        return None
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return int(timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds).total_seconds())
