"""Green Software Foundation Carbon Aware SDK WebAPI (self-hosted).

Its signal and units depend on the SDK's data source: say which with `signal` (WattTime-backed
deployments serve marginal rates) and `units` (`g_per_kwh`, or `lbs_per_mwh` to convert).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Literal

import httpx
from pydantic import Field, RootModel, StrictFloat

from carbonshift.catalog import Region
from carbonshift.providers.http import JsonApi, RetryPolicy
from carbonshift.providers.points import clip, iso_seconds, series_from_points
from carbonshift.providers.responses import Instant, Number, Response, parse
from carbonshift.providers.secrets import Scrubber, scrubbed
from carbonshift.series import IntensitySeries, Signal
from carbonshift.units import g_per_kwh_from_lbs_per_mwh

_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})")


class ForecastPoint(Response):
    timestamp: Instant
    value: Number
    duration: Annotated[StrictFloat, Field(allow_inf_nan=False)] | None = None  # minutes


class Forecast(Response):
    forecast_data: list[ForecastPoint] = Field(alias="forecastData")


class Forecasts(RootModel[Annotated[list[Forecast], Field(min_length=1)]]):
    """`/emissions/forecasts/current`: one forecast per location asked for (we ask for one)."""


class Emission(Response):
    time: Instant
    rating: Number
    duration: str | None = None  # a .NET TimeSpan, `01:00:00`


class Emissions(RootModel[list[Emission]]):
    """`/emissions/bylocation`."""


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
        data = parse(self.name, Forecasts, body, zone).root[0].forecast_data
        points = [(p.timestamp, self._value(p.value)) for p in data]
        first = data[0].duration if data else None
        step = int(first) * 60 if first is not None and first > 0 else None
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
        emissions = parse(self.name, Emissions, body, zone).root
        points = sorted(((e.time, self._value(e.rating)) for e in emissions), key=lambda p: p[0])
        step = _timespan_s(emissions[0].duration) if emissions else None
        return clip(self.name, self._series(zone, points, step), start, end)

    def _value(self, value: float | None) -> float | None:
        if value is not None and self._units == "lbs_per_mwh":
            return g_per_kwh_from_lbs_per_mwh(value)
        return value

    def _series(
        self, zone: str, points: list[tuple[datetime, float | None]], step_s: int | None
    ) -> IntensitySeries:
        return series_from_points(
            self.name, zone, points, signal=self.signal, source=f"live:{self.name}", step_s=step_s
        )


def _timespan_s(text: str | None) -> int | None:
    """.NET TimeSpan text (`01:00:00`, `1.00:00:00`) in seconds."""
    match = _TIMESPAN.match(text) if text is not None else None
    if not match:
        return None
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return int(timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds).total_seconds())
