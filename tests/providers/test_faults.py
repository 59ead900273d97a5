"""The fault table, run against every HTTP provider at the transport layer.

| fault                       | what the user gets                                            |
| --------------------------- | ------------------------------------------------------------- |
| connect timeout             | 4 tries (waits 0.5, 2, 5 s), then ProviderUnavailable         |
| read timeout                | the same                                                      |
| 500, then 200               | the series, after one 0.5 s wait                              |
| 503 forever                 | ProviderUnavailable "HTTP 503 ... after 4 attempts"           |
| 429 with Retry-After: 1     | the series, after waiting exactly 1 s                         |
| invalid JSON                | ProviderBadResponse "did not return JSON", no retry           |
| a null between two values   | the series, the hole filled by interpolation and recorded     |
| a gap in the series         | ProviderBadResponse "gap of ... min"                          |
| an empty forecast           | ProviderBadResponse "no values"                               |
| forecast ends before window | the shorter series (the planner reports how much it covered)  |
| wrong units                 | ProviderBadResponse naming the units or the value             |

In a chain, every ProviderError moves on to the next provider, then the caches, then static.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from carbonshift.providers import (
    ForecastProvider,
    ProviderBadResponse,
    ProviderUnavailable,
)
from carbonshift.providers.carbon_aware_sdk import CarbonAwareSdk
from carbonshift.providers.electricitymaps import ElectricityMaps
from carbonshift.providers.http import RetryPolicy
from carbonshift.providers.ukneso import UkNeso
from carbonshift.providers.watttime import WattTime
from tests.providers.shapes import (
    Points,
    Router,
    Sleeps,
    em_forecast,
    fixed,
    neso_national,
    sdk_forecast,
    watttime,
)

START = datetime(2023, 6, 8, tzinfo=UTC)
# A random source in the middle of [0, 1): every backoff wait is its step, unjittered.
EVEN = RetryPolicy(uniform=lambda: 0.5)


@dataclass(frozen=True)
class Api:
    name: str
    path: str
    zone: str
    step_min: int
    body: Callable[[Points], Any]
    wrong_units: Callable[[Points], Any]
    build: Callable[[httpx.Client, Sleeps], ForecastProvider]
    extra_routes: tuple[tuple[str, Any], ...] = ()
    to_g_per_kwh: float = 1.0


def _huge(points: Points) -> Points:
    return [(t, 5000.0) for t, _ in points]


APIS = [
    Api(
        "electricitymaps",
        "/carbon-intensity/forecast",
        "DE",
        60,
        em_forecast,
        lambda p: em_forecast(_huge(p)),
        lambda c, s: ElectricityMaps(SecretStr("em-key-for-tests"), client=c, sleep=s, retry=EVEN),
    ),
    Api(
        "watttime",
        "/v3/forecast",
        "CAISO_NORTH",
        5,
        watttime,
        lambda p: watttime(p, units="kg_co2_per_mwh"),
        lambda c, s: WattTime(
            "u", SecretStr("wt-password-for-tests"), client=c, sleep=s, clock=fixed(START),
            retry=EVEN,
        ),
        (("/login", {"token": "wt-token-for-tests"}),),
        0.45359237,
    ),
    Api(
        "ukneso",
        "/fw48h",
        "GB",
        30,
        neso_national,
        lambda p: neso_national(_huge(p)),
        lambda c, s: UkNeso(client=c, sleep=s, retry=EVEN),
    ),
    Api(
        "carbon-aware-sdk",
        "/emissions/forecasts/current",
        "eastus",
        5,
        sdk_forecast,
        lambda p: sdk_forecast(_huge(p)),
        lambda c, s: CarbonAwareSdk("http://sdk.local", client=c, sleep=s, retry=EVEN),
    ),
]


def points(api: Api, n: int = 12, values: list[float | None] | None = None) -> Points:
    vals = values if values is not None else [100.0 + i for i in range(n)]
    return [(START + timedelta(minutes=api.step_min * i), v) for i, v in enumerate(vals)]


def window(api: Api, n: int = 12) -> tuple[datetime, datetime]:
    return START, START + timedelta(minutes=api.step_min * n)


def run(api: Api, *responses: Any) -> tuple[Any, Router, Sleeps]:
    router = Router()
    for path, body in api.extra_routes:
        router.on(path, body)
    router.on(api.path, *responses)
    sleeps = Sleeps()
    provider = api.build(router.client(), sleeps)
    try:
        return provider.forecast(api.zone, *window(api)), router, sleeps
    except Exception as e:  # noqa: BLE001 - the test inspects what the user gets
        return e, router, sleeps


@pytest.fixture(params=APIS, ids=lambda a: a.name)
def api(request: pytest.FixtureRequest) -> Api:
    result: Api = request.param
    return result


@pytest.mark.parametrize(
    "exc",
    [httpx.ConnectTimeout("slow"), httpx.ReadTimeout("slow")],
    ids=["connect-timeout", "read-timeout"],
)
def test_timeouts_retry_then_unavailable(api: Api, exc: Exception) -> None:
    result, router, sleeps = run(api, exc)
    assert isinstance(result, ProviderUnavailable)
    assert "timed out" in str(result) and "after 4 attempts" in str(result)
    assert router.count(api.path) == 4
    assert sleeps.waits == [0.5, 2.0, 5.0]


def test_500_then_200_recovers(api: Api) -> None:
    result, router, sleeps = run(api, httpx.Response(500), api.body(points(api)))
    assert not isinstance(result, Exception), result
    assert len(result) == 12
    assert result.g_per_kwh[0] == pytest.approx(100.0 * api.to_g_per_kwh)
    assert sleeps.waits == [0.5]


def test_503_forever_is_unavailable(api: Api) -> None:
    result, router, _ = run(api, httpx.Response(503))
    assert isinstance(result, ProviderUnavailable)
    assert "HTTP 503" in str(result)
    assert router.count(api.path) == 4


def test_429_honours_retry_after(api: Api) -> None:
    limited = httpx.Response(429, headers={"Retry-After": "1"})
    result, _, sleeps = run(api, limited, api.body(points(api)))
    assert not isinstance(result, Exception), result
    assert sleeps.waits == [1.0]


def test_invalid_json_is_a_bad_response(api: Api) -> None:
    result, router, sleeps = run(api, httpx.Response(200, text="<html>oops</html>"))
    assert isinstance(result, ProviderBadResponse)
    assert "did not return JSON" in str(result)
    assert router.count(api.path) == 1 and sleeps.waits == []


def test_null_between_values_is_filled_and_recorded(api: Api) -> None:
    values: list[float | None] = [100.0 + i for i in range(12)]
    values[5] = None
    result, _, _ = run(api, api.body(points(api, values=values)))
    assert not isinstance(result, Exception), result
    assert result.g_per_kwh[5] == pytest.approx(105.0 * api.to_g_per_kwh)
    assert len(result.fills) == 1 and result.fills[0].points == 1


def test_gap_in_series_is_a_bad_response(api: Api) -> None:
    gappy = [p for i, p in enumerate(points(api)) if not 3 <= i <= 7]
    result, _, _ = run(api, api.body(gappy))
    assert isinstance(result, ProviderBadResponse)
    assert "gap of" in str(result)


def test_empty_forecast_is_a_bad_response(api: Api) -> None:
    result, _, _ = run(api, api.body([]))
    assert isinstance(result, ProviderBadResponse)
    assert "no values" in str(result)


def test_forecast_ending_early_returns_what_there_is(api: Api) -> None:
    result, _, _ = run(api, api.body(points(api, n=5)))
    assert not isinstance(result, Exception), result
    start, end = window(api)
    assert result.start == start
    assert result.end == start + timedelta(minutes=5 * api.step_min) < end


def test_wrong_units_are_a_bad_response(api: Api) -> None:
    result, _, _ = run(api, api.wrong_units(points(api)))
    assert isinstance(result, ProviderBadResponse)
    assert "units" in str(result) or "above 2000" in str(result)
