"""WattTime API v3: marginal operating emissions rate (MOER), lbs CO2/MWh converted to g/kWh."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import SecretStr

from carbonshift.catalog import Region
from carbonshift.providers.base import ProviderBadResponse, ProviderRejected
from carbonshift.providers.http import AuthExpired, JsonApi, RetryPolicy
from carbonshift.providers.points import clip, instant, number, series_from_points
from carbonshift.providers.secrets import Scrubber, scrubbed
from carbonshift.series import IntensitySeries, Signal
from carbonshift.units import g_per_kwh_from_lbs_per_mwh

BASE_URL = "https://api.watttime.org"
UNITS = "lbs_co2_per_mwh"
MAX_HORIZON_H = 72


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

    def _get(self, path: str, zone: str, extra: Mapping[str, str | int]) -> Any:
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
            body = self._api.get("login", auth=auth)
            token = body.get("token") if isinstance(body, dict) else None
            if isinstance(token, str) and token:
                self.scrubber.add(token)  # before anything can quote it back
            if not isinstance(token, str) or not token:
                raise ProviderBadResponse(self.name, "login answered without a token")
            self._token = token
        return self._token

    def _series(self, zone: str, body: Any) -> IntensitySeries:
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise ProviderBadResponse(self.name, f"{zone}: response has no 'data' list")
        raw_meta = body.get("meta")
        meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
        units = meta.get("units")
        if units != UNITS:
            raise ProviderBadResponse(
                self.name, f"{zone}: units are {units!r}, expected {UNITS!r}: not converted"
            )
        points = []
        for item in body["data"]:
            if not isinstance(item, dict) or "point_time" not in item or "value" not in item:
                raise ProviderBadResponse(self.name, f"{zone}: a point without point_time/value")
            value = number(self.name, item["value"])
            points.append(
                (
                    instant(self.name, item["point_time"]),
                    None if value is None else g_per_kwh_from_lbs_per_mwh(value),
                )
            )
        step = meta.get("data_point_period_seconds")
        return series_from_points(
            self.name,
            zone,
            points,
            signal=self.signal,
            source=f"live:{self.name}",
            step_s=step if isinstance(step, int) else None,
        )
