"""WattTime API v3: marginal operating emissions rate (MOER), lbs CO2/MWh converted to g/kWh."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import httpx
from pydantic import Field, SecretStr

from carbonshift.catalog import Region
from carbonshift.providers.base import ProviderBadResponse, ProviderRejected
from carbonshift.providers.http import AuthExpired, JsonApi, RetryPolicy
from carbonshift.providers.points import clip, series_from_points
from carbonshift.providers.responses import Instant, Number, Response, parse
from carbonshift.providers.secrets import Scrubber, scrubbed
from carbonshift.series import IntensitySeries, Signal
from carbonshift.units import g_per_kwh_from_lbs_per_mwh

BASE_URL = "https://api.watttime.org"
UNITS = "lbs_co2_per_mwh"
MAX_HORIZON_H = 72


class Login(Response):
    token: str = Field(min_length=1)


class Point(Response):
    point_time: Instant
    value: Number  # lbs CO2/MWh; null: missing


class Meta(Response):
    units: str | None = None
    data_point_period_seconds: int | None = Field(default=None, gt=0, strict=True)


class Data(Response):
    """`/v3/forecast`, `/v3/historical` (and `/v3/forecast/historical`, one forecast of it)."""

    data: list[Point]
    meta: Meta = Meta()


class WattTime:
    """Zones are WattTime region abbreviations (`CAISO_NORTH`). The signal is marginal (MOER)."""

    name = "watttime"
    signal = Signal.MOER

    def __init__(
        self,
        username: str | None,
        password: SecretStr | None,
        *,
        base_url: str | None = None,
        client: httpx.Client | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        scrubber: Scrubber | None = None,
    ) -> None:
        self._username = username
        self._password = password
        self._clock = clock
        self._token: str | None = None
        self.scrubber = scrubber or Scrubber()
        if password is not None:
            self.scrubber.add_basic_auth(username or "", password.get_secret_value())
        self._api = JsonApi(
            self.name, base_url or BASE_URL, client, retry, sleep, scrubber=self.scrubber
        )
        self.cache_id = f"{self.name} {self._api.base_url}"

    @scrubbed
    def zone_for(self, region: Region) -> str:
        return region.watttime_region

    @scrubbed
    def forecast(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        hours = math.ceil((end - self._clock()).total_seconds() / 3600)
        params = {"horizon_hours": min(max(hours, 1), MAX_HORIZON_H)}
        body = self._get("v3/forecast", zone, params)
        return clip(self.name, self._series(zone, body), start, end)

    @scrubbed
    def actuals(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        params = {"start": start.isoformat(), "end": end.isoformat()}
        body = self._get("v3/historical", zone, params)
        return clip(self.name, self._series(zone, body), start, end)

    def _get(self, path: str, zone: str, extra: Mapping[str, str | int]) -> object:
        params: dict[str, str | int] = {"region": zone, "signal_type": "co2_moer", **extra}
        for fresh_login in (False, True):
            token = self._login(force=fresh_login)
            try:
                return self._api.get(
                    path, params=params, headers={"Authorization": f"Bearer {token}"}
                )
            except AuthExpired:
                if fresh_login:
                    raise
        raise AssertionError("unreachable")

    def _login(self, force: bool) -> str:
        if not self._username or self._password is None:
            raise ProviderRejected(
                self.name, "no login: set WATTTIME_USERNAME and WATTTIME_PASSWORD"
            )
        if self._token is None or force:
            auth = httpx.BasicAuth(self._username, self._password.get_secret_value())
            token = parse(self.name, Login, self._api.get("login", auth=auth), "login").token
            self.scrubber.add(token)  # before anything can quote it back
            self._token = token
        return self._token

    def _series(self, zone: str, body: object) -> IntensitySeries:
        response = parse(self.name, Data, body, zone)
        units = response.meta.units
        if units != UNITS:
            raise ProviderBadResponse(
                self.name, f"{zone}: units are {units!r}, expected {UNITS!r}: not converted"
            )
        points = [
            (p.point_time, None if p.value is None else g_per_kwh_from_lbs_per_mwh(p.value))
            for p in response.data
        ]
        return series_from_points(
            self.name,
            zone,
            points,
            signal=self.signal,
            source=f"live:{self.name}",
            step_s=response.meta.data_point_period_seconds,
        )
