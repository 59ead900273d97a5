"""A server answers 200 with JSON of the wrong shape: every provider refuses it with one
ProviderBadResponse line naming the provider, the zone and the field's path (never the value it
got, but for the units a provider refuses to convert), and no JSON, whatever its shape, gets past
the boundary as anything else."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from carbonshift.providers import ProviderBadResponse, ProviderError
from carbonshift.providers.carbon_aware_sdk import CarbonAwareSdk
from carbonshift.providers.electricitymaps import ElectricityMaps
from carbonshift.providers.ukneso import UkNeso
from carbonshift.providers.watttime import WattTime
from tests.providers.shapes import (
    Router,
    Sleeps,
    em_forecast,
    fixed,
    fixture,
    neso_national,
    sdk_forecast,
    watttime,
)

T = datetime(2023, 6, 8, tzinfo=UTC)
NESO_T = datetime(2023, 3, 10, 18, 30, tzinfo=UTC)  # the recorded regional response
SENTINEL = "VALUE-THE-SERVER-SENT"


def _points(step_min: int, n: int = 6) -> list[tuple[datetime, float | None]]:
    return [(T + timedelta(minutes=step_min * i), 100.0 + i) for i in range(n)]


def _em(router: Router, clock: datetime = T) -> ElectricityMaps:
    return ElectricityMaps(
        SecretStr("em-key"), client=router.client(), sleep=Sleeps(), clock=fixed(clock)
    )


def _wt(router: Router) -> WattTime:
    return WattTime(
        "u", SecretStr("pw"), client=router.client(), sleep=Sleeps(), clock=fixed(T)
    )


def _neso(router: Router) -> UkNeso:
    return UkNeso(client=router.client(), sleep=Sleeps())


def _sdk(router: Router) -> CarbonAwareSdk:
    return CarbonAwareSdk("http://sdk.local", client=router.client(), sleep=Sleeps())


@dataclass(frozen=True)
class Call:
    """One endpoint of one provider: a well-formed body, and how to ask for it."""

    name: str
    route: str
    body: Callable[[], Any]
    ask: Callable[[Router], object]
    routes: tuple[tuple[str, Any], ...] = ()


CALLS = {
    c.name: c
    for c in [
        Call(
            "em-forecast",
            "/carbon-intensity/forecast",
            lambda: em_forecast(_points(60)),
            lambda r: _em(r).forecast("DE", T, T + timedelta(hours=6)),
        ),
        Call(
            "em-history",
            "/carbon-intensity/history",
            lambda: {"history": em_forecast(_points(60))["forecast"]},
            lambda r: _em(r, T + timedelta(hours=6)).actuals("DE", T, T + timedelta(hours=6)),
        ),
        Call(
            "em-past-range",
            "/carbon-intensity/past-range",
            lambda: {"data": em_forecast(_points(60))["forecast"]},
            lambda r: _em(r, T + timedelta(days=30)).actuals("DE", T, T + timedelta(hours=6)),
        ),
        Call(
            "em-latest",
            "/carbon-intensity/latest",
            lambda: fixture("electricitymaps_v3_carbon-intensity_latest_or_past.json"),
            lambda r: _em(r).latest("DE"),
        ),
        Call(
            "wt-login",
            "/login",
            lambda: {"token": "wt-token"},
            lambda r: _wt(r).forecast("CAISO_NORTH", T, T + timedelta(minutes=30)),
            (("/v3/forecast", watttime(_points(5))),),
        ),
        Call(
            "wt-forecast",
            "/v3/forecast",
            lambda: watttime(_points(5)),
            lambda r: _wt(r).forecast("CAISO_NORTH", T, T + timedelta(minutes=30)),
            (("/login", {"token": "wt-token"}),),
        ),
        Call(
            "wt-historical",
            "/v3/historical",
            lambda: watttime(_points(5)),
            lambda r: _wt(r).actuals("CAISO_NORTH", T, T + timedelta(minutes=30)),
            (("/login", {"token": "wt-token"}),),
        ),
        Call(
            "neso-fw48h",
            "/fw48h",
            lambda: neso_national(_points(30)),
            lambda r: _neso(r).forecast("GB", T, T + timedelta(hours=3)),
        ),
        Call(
            "neso-pt24h",
            "/pt24h",
            lambda: neso_national(_points(30), field_name="actual"),
            lambda r: _neso(r).actuals("GB", T, T + timedelta(hours=3)),
        ),
        Call(
            "neso-regional",
            "/fw48h/regionid/7",
            lambda: fixture("ukci_regional_fw48h_2023-03-10T1831Z_TRUNCATED.json"),
            lambda r: _neso(r).forecast("GB-region-7", NESO_T, NESO_T + timedelta(hours=1)),
        ),
        Call(
            "neso-region",
            "/fw48h/postcode/RG10",
            lambda: {"data": [{"regionid": 12, "postcode": "RG10",
                               "data": neso_national(_points(30))["data"]}]},
            lambda r: _neso(r).forecast("GB-postcode-RG10", T, T + timedelta(hours=3)),
        ),
        Call(
            "sdk-forecast",
            "/emissions/forecasts/current",
            lambda: sdk_forecast(_points(5)),
            lambda r: _sdk(r).forecast("eastus", T, T + timedelta(minutes=30)),
        ),
        Call(
            "sdk-bylocation",
            "/emissions/bylocation",
            lambda: [
                {"location": "eastus", "time": t.isoformat(), "rating": v, "duration": "01:00:00"}
                for t, v in _points(60)
            ],
            lambda r: _sdk(r).actuals("eastus", T, T + timedelta(hours=6)),
        ),
    ]
}


def ask(call: Call, body: Any) -> object:
    router = Router()
    for path, answer in call.routes:
        router.on(path, answer)
    router.on(call.route, body)
    try:
        return call.ask(router)
    except Exception as e:  # noqa: BLE001 - the test inspects what the user gets
        return e


def _set(body: Any, path: tuple[Any, ...], value: Any) -> Any:
    out = copy.deepcopy(body)
    here = out
    for key in path[:-1]:
        here = here[key]
    if value is _DELETE:
        del here[path[-1]]
    else:
        here[path[-1]] = value
    return out


_DELETE = object()

# (endpoint, where to break its well-formed body, what to put there, the message expected)
BROKEN = [
    ("em-forecast", ("forecast", 3, "carbonIntensity"), SENTINEL,
     "electricitymaps: DE: forecast[3].carbonIntensity: Input should be a valid number"),
    ("em-forecast", ("forecast", 1, "datetime"), _DELETE,
     "electricitymaps: DE: forecast[1].datetime: Field required"),
    ("em-forecast", ("forecast", 2, "datetime"), SENTINEL,
     "electricitymaps: DE: forecast[2].datetime: Input should be an ISO 8601 instant with a UTC "
     "offset"),
    ("em-forecast", ("forecast", 2, "datetime"), "2023-06-08T02:00:00",
     "electricitymaps: DE: forecast[2].datetime: Input should be an ISO 8601 instant with a UTC "
     "offset"),
    ("em-forecast", ("forecast",), SENTINEL,
     "electricitymaps: DE: forecast: Input should be a valid list"),
    ("em-history", ("history", 0, "carbonIntensity"), True,
     "electricitymaps: DE: history[0].carbonIntensity: Input should be a valid number"),
    ("em-past-range", ("data", 4), SENTINEL,
     "electricitymaps: DE: data[4]: Input should be an object"),
    ("em-latest", ("datetime",), 12,
     "electricitymaps: DE: datetime: Input should be an ISO 8601 time (a string)"),
    ("wt-login", ("token",), "",
     "watttime: login: token: String should have at least 1 character"),
    ("wt-login", ("token",), _DELETE, "watttime: login: token: Field required"),
    ("wt-forecast", ("data", 2, "value"), SENTINEL,
     "watttime: CAISO_NORTH: data[2].value: Input should be a valid number"),
    ("wt-forecast", ("meta", "units"), SENTINEL,
     f"watttime: CAISO_NORTH: units are '{SENTINEL}', expected 'lbs_co2_per_mwh': not converted"),
    ("wt-historical", ("data", 0, "point_time"), _DELETE,
     "watttime: CAISO_NORTH: data[0].point_time: Field required"),
    ("wt-historical", ("meta",), SENTINEL,
     "watttime: CAISO_NORTH: meta: Input should be an object"),
    ("neso-fw48h", ("data", 0, "intensity"), _DELETE,
     "ukneso: GB: data[0].intensity: Field required"),
    ("neso-pt24h", ("data", 1, "intensity", "actual"), SENTINEL,
     "ukneso: GB: data[1].intensity.actual: Input should be a valid number"),
    ("neso-regional", ("data", 0, "regions", 1, "intensity", "forecast"), SENTINEL,
     "ukneso: GB-region-7: data[0].regions[1].intensity.forecast: Input should be a valid number"),
    ("neso-region", ("data", 0, "data", 2, "from"), SENTINEL,
     "ukneso: GB-postcode-RG10: data[0].data[2].from: Input should be an ISO 8601 instant with a "
     "UTC offset"),
    ("sdk-forecast", (0, "forecastData", 2, "value"), _DELETE,
     "carbon-aware-sdk: eastus: [0].forecastData[2].value: Field required"),
    ("sdk-forecast", (0, "forecastData"), SENTINEL,
     "carbon-aware-sdk: eastus: [0].forecastData: Input should be a valid list"),
    ("sdk-bylocation", (1, "rating"), SENTINEL,
     "carbon-aware-sdk: eastus: [1].rating: Input should be a valid number"),
]


@pytest.mark.parametrize(
    ("endpoint", "path", "value", "expected"),
    BROKEN,
    ids=[f"{e}-{'.'.join(map(str, p))}" for e, p, _, _ in BROKEN],
)
def test_a_malformed_field_is_named_with_its_path(
    endpoint: str, path: tuple[Any, ...], value: Any, expected: str
) -> None:
    call = CALLS[endpoint]
    assert not isinstance(ask(call, call.body()), Exception)  # the well-formed body parses
    result = ask(call, _set(call.body(), path, value))
    assert isinstance(result, ProviderBadResponse)
    assert str(result) == expected


@pytest.mark.parametrize(
    ("endpoint", "body", "expected"),
    [
        ("em-forecast", [], "electricitymaps: DE: response: Input should be an object"),
        ("sdk-forecast", [], "carbon-aware-sdk: eastus: response: List should have at least 1 "
                             "item after validation, not 0"),
        ("sdk-bylocation", {"x": 1}, "carbon-aware-sdk: eastus: response: Input should be a "
                                     "valid list"),
        ("neso-region", {"data": []}, "ukneso: GB-postcode-RG10: data[0]: Field required"),
        ("neso-region", {"data": "x"}, "ukneso: GB-postcode-RG10: data: Input should be an object"),
        ("wt-login", [SENTINEL], "watttime: login: response: Input should be an object"),
    ],
)
def test_a_body_of_the_wrong_kind_is_named(endpoint: str, body: Any, expected: str) -> None:
    result = ask(CALLS[endpoint], body)
    assert isinstance(result, ProviderBadResponse)
    assert str(result) == expected


def test_many_bad_fields_give_one_line_that_counts_the_rest() -> None:
    body = em_forecast([(T + timedelta(hours=h), None) for h in range(6)])
    for item in body["forecast"]:
        item["carbonIntensity"] = SENTINEL
    result = ask(CALLS["em-forecast"], body)
    assert str(result) == (
        "electricitymaps: DE: forecast[0].carbonIntensity: Input should be a valid number "
        "(and 5 more)"
    )


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=4),
    max_leaves=12,
)


def _mutations(call: Call) -> st.SearchStrategy[Any]:
    """The endpoint's body with one field (at any depth) replaced by arbitrary JSON."""
    paths: list[tuple[Any, ...]] = []

    def walk(node: Any, here: tuple[Any, ...]) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node[:3])
        for key, value in items:
            paths.append((*here, key))
            if isinstance(value, dict | list):
                walk(value, (*here, key))

    body = call.body()
    walk(body, ())
    return st.tuples(st.sampled_from(paths), JSON | st.just(_DELETE)).map(
        lambda pv: _set(body, pv[0], pv[1])
    )


@pytest.mark.parametrize("endpoint", sorted(CALLS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_json_is_a_series_or_one_line_naming_the_provider(
    endpoint: str, data: st.DataObject
) -> None:
    call = CALLS[endpoint]
    body = data.draw(JSON | _mutations(call))
    result = ask(call, body)
    if isinstance(result, Exception):
        assert isinstance(result, ProviderError), repr(result)
        assert "\n" not in str(result)
        assert str(result).startswith(f"{result.provider}: ")
        assert result.provider in ("electricitymaps", "watttime", "ukneso", "carbon-aware-sdk")
