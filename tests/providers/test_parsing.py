"""Each provider parses its recorded shapes into correct series: values, units, signal, grid."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr

from carbonshift.catalog import Catalog
from carbonshift.providers import ProviderBadResponse, ProviderRejected
from carbonshift.providers.carbon_aware_sdk import CarbonAwareSdk
from carbonshift.providers.electricitymaps import ElectricityMaps
from carbonshift.providers.ukneso import UkNeso
from carbonshift.providers.watttime import WattTime
from carbonshift.series import Signal
from tests.providers.shapes import Router, Sleeps, fixed, fixture, neso_national, sdk_forecast

TOKEN = SecretStr("em-test-token")
T = datetime(2023, 1, 1, tzinfo=UTC)


def em(router: Router, **kw: object) -> ElectricityMaps:
    return ElectricityMaps(TOKEN, client=router.client(), sleep=Sleeps(), **kw)  # type: ignore[arg-type]


def test_electricitymaps_forecast_fixture() -> None:
    router = Router().on(
        "/carbon-intensity/forecast",
        fixture("electricitymaps_v3_carbon-intensity_forecast_SHAPE.json"),
    )
    s = em(router).forecast("DE", T, T + timedelta(hours=3))
    assert list(s.g_per_kwh) == [186, 180, 175]
    assert s.start == T and s.step_s == 3600 and s.zone == "DE"
    assert s.signal == Signal.LCA and s.source == "live:electricitymaps"
    (request,) = router.requests
    assert request.headers["auth-token"] == "em-test-token"
    assert request.url.params["zone"] == "DE"
    assert request.url.params["emissionFactorType"] == "lifecycle"


def test_electricitymaps_history_drops_trailing_null() -> None:
    router = Router().on(
        "/carbon-intensity/history",
        fixture("electricitymaps_v3_carbon-intensity_history_SHAPE.json"),
    )
    provider = em(router, clock=fixed(T + timedelta(hours=3)), signal=Signal.DIRECT)
    s = provider.actuals("DE", T, T + timedelta(hours=3))
    assert list(s.g_per_kwh) == [186, 186]
    assert router.requests[0].url.params["emissionFactorType"] == "direct"


def test_electricitymaps_past_range_for_older_periods() -> None:
    body = {
        "zone": "DE",
        "data": [
            {"zone": "DE", "carbonIntensity": 300 + h, "datetime": f"2023-01-01T{h:02d}:00:00.000Z"}
            for h in range(6)
        ],
    }
    router = Router().on("/carbon-intensity/past-range", body)
    s = em(router, clock=fixed(T + timedelta(days=30))).actuals("DE", T, T + timedelta(hours=4))
    assert list(s.g_per_kwh) == [300, 301, 302, 303]
    assert router.requests[0].url.params["start"] == "2023-01-01T00:00:00Z"


def test_electricitymaps_latest_and_data_center_lookup(catalog: Catalog) -> None:
    router = Router().on(
        "/carbon-intensity/latest",
        fixture("electricitymaps_v3_carbon-intensity_latest_or_past.json"),
    )
    provider = em(router, by_data_center=True)
    zone = provider.zone_for(catalog.region("gcp:europe-west4"))
    assert zone == "gcp:europe-west4"
    moment, value = provider.latest(zone)
    assert (moment, value) == (datetime(2019, 5, 21, tzinfo=UTC), 322.0)
    params = router.requests[0].url.params
    assert params["dataCenterProvider"] == "gcp" and params["dataCenterRegion"] == "europe-west4"
    assert "zone" not in params


def test_watttime_login_then_forecast_in_g_per_kwh() -> None:
    router = (
        Router()
        .on("/login", {"token": "wt-token-1"})
        .on("/v3/forecast", fixture("watttime_v3_forecast_SHAPE.json"))
    )
    start = datetime(2023, 6, 8, 0, 5, tzinfo=UTC)
    wt = WattTime(
        "user", SecretStr("pw"), client=router.client(), sleep=Sleeps(), clock=fixed(start)
    )
    s = wt.forecast("CAISO_NORTH", start, start + timedelta(minutes=15))
    assert s.g_per_kwh == pytest.approx(
        [909.2 * 0.45359237, 912.3 * 0.45359237, 905.5 * 0.45359237]
    )
    assert s.signal == Signal.MOER and s.step_s == 300
    login, forecast = router.requests
    assert login.headers["authorization"].startswith("Basic ")
    assert forecast.headers["authorization"] == "Bearer wt-token-1"
    assert forecast.url.params["signal_type"] == "co2_moer"
    assert forecast.url.params["horizon_hours"] == "1"


def test_watttime_refreshes_token_once_on_401() -> None:
    router = (
        Router()
        .on("/login", {"token": "old"}, {"token": "new"})
        .on("/v3/historical", httpx.Response(401), fixture("watttime_v3_historical_SHAPE.json"))
    )
    start = datetime(2023, 6, 8, tzinfo=UTC)
    wt = WattTime("user", SecretStr("pw"), client=router.client(), sleep=Sleeps())
    s = wt.actuals("CAISO_NORTH", start, start + timedelta(minutes=10))
    assert s.g_per_kwh == pytest.approx([937.0 * 0.45359237, 953.0 * 0.45359237])
    assert router.count("/login") == 2
    assert router.requests[-1].headers["authorization"] == "Bearer new"


def test_watttime_401_after_refresh_is_rejected() -> None:
    router = Router().on("/login", {"token": "t"}).on("/v3/forecast", httpx.Response(401))
    wt = WattTime("user", SecretStr("pw"), client=router.client(), sleep=Sleeps(), clock=fixed(T))
    with pytest.raises(ProviderRejected, match="401"):
        wt.forecast("CAISO_NORTH", T, T + timedelta(hours=1))


def test_neso_national_pt24h_fixture_carries_actuals() -> None:
    recorded = fixture("ukci_national_pt24h_2023-03-16T0331Z_TRUNCATED.json")
    router = Router().on("/pt24h", recorded)
    neso = UkNeso(client=router.client(), sleep=Sleeps())
    start = datetime(2023, 3, 15, 3, 30, tzinfo=UTC)
    s = neso.actuals("GB", start, start + timedelta(hours=2))
    assert list(s.g_per_kwh) == [184, 199, 202]  # the actuals; the last period's is still null
    assert s.signal == Signal.DIRECT and s.step_s == 1800
    assert router.requests[-1].url.path == "/intensity/2023-03-15T05:30Z/pt24h"
    # Its forecasts run on into the next day after a 22.5 h hole: that is refused, not guessed.
    router.on("/fw48h", recorded)
    with pytest.raises(ProviderBadResponse, match="gap of 1350 min"):
        neso.forecast("GB", start, start + timedelta(hours=48))


def test_neso_national_forecast_and_regional_shapes() -> None:
    start = datetime(2023, 3, 10, 18, 30, tzinfo=UTC)
    points = [(start + timedelta(minutes=30 * i), 100.0 + i) for i in range(96)]
    router = (
        Router()
        .on("/fw48h", neso_national(points))
        .on("/fw48h/regionid/7", fixture("ukci_regional_fw48h_2023-03-10T1831Z_TRUNCATED.json"))
    )
    neso = UkNeso(client=router.client(), sleep=Sleeps())
    s = neso.forecast("GB", start, start + timedelta(hours=48))
    assert len(s) == 96 and s.g_per_kwh[0] == 100.0
    assert router.requests[0].url.path == "/intensity/2023-03-10T18:30Z/fw48h"
    regional = neso.forecast("GB-region-7", start, start + timedelta(hours=1))
    assert list(regional.g_per_kwh) == [388]  # South Wales in the recorded response
    assert router.requests[1].url.path == "/regional/intensity/2023-03-10T18:30Z/fw48h/regionid/7"


def test_neso_zones(catalog: Catalog) -> None:
    neso = UkNeso(client=Router().client())
    assert neso.zone_for(catalog.region("aws:eu-west-2")) == "GB"
    with pytest.raises(ProviderRejected, match="not in Great Britain"):
        neso.zone_for(catalog.region("aws:us-east-1"))
    with pytest.raises(ProviderRejected, match="unknown zone"):
        neso.forecast("FR", T, T + timedelta(hours=1))
    with pytest.raises(ProviderRejected, match="regional actuals"):
        neso.actuals("GB-region-3", T, T + timedelta(hours=1))


def test_carbon_aware_sdk_forecast_and_actuals() -> None:
    start = datetime(2022, 7, 19, 14, tzinfo=UTC)
    points = [(start + timedelta(minutes=5 * i), 500.0 - i) for i in range(12)]
    actuals = [
        {
            "location": "eastus",
            "time": (start + timedelta(hours=h)).isoformat(),
            "rating": 400.0 + h,
            "duration": "01:00:00",
        }
        for h in (2, 0, 1)
    ]
    router = (
        Router()
        .on("/emissions/forecasts/current", sdk_forecast(points))
        .on("/emissions/bylocation", actuals)
    )
    sdk = CarbonAwareSdk("http://sdk.local", client=router.client(), sleep=Sleeps())
    s = sdk.forecast("eastus", start, start + timedelta(hours=1))
    assert len(s) == 12 and s.step_s == 300 and s.g_per_kwh[0] == 500.0
    assert router.requests[0].url.params["location"] == "eastus"
    a = sdk.actuals("eastus", start, start + timedelta(hours=3))
    assert list(a.g_per_kwh) == [400.0, 401.0, 402.0]  # sorted by time
    assert a.step_s == 3600


def test_carbon_aware_sdk_recorded_shape_has_a_gap() -> None:
    router = Router().on(
        "/emissions/forecasts/current",
        fixture("carbon-aware-sdk_webapi_forecasts_current_SHAPE.json"),
    )
    sdk = CarbonAwareSdk("http://sdk.local", client=router.client(), sleep=Sleeps())
    start = datetime(2022, 7, 19, 14, tzinfo=UTC)
    with pytest.raises(ProviderBadResponse, match="gap"):
        sdk.forecast("northeurope", start, start + timedelta(hours=15))
    # Its 10-minute points are held on the 5-minute grid.
    body = fixture("carbon-aware-sdk_webapi_forecasts_current_SHAPE.json")
    body[0]["forecastData"] = body[0]["forecastData"][:1]
    router.on("/emissions/forecasts/current", body)
    s = sdk.forecast("northeurope", start, start + timedelta(hours=1))
    assert s.step_s == 300 and list(s.g_per_kwh) == [532.02293146] * 2


def test_carbon_aware_sdk_converts_lbs_when_told() -> None:
    start = datetime(2022, 7, 19, 14, tzinfo=UTC)
    router = Router().on(
        "/emissions/forecasts/current",
        sdk_forecast([(start, 1000.0), (start + timedelta(minutes=5), 1000.0)]),
    )
    sdk = CarbonAwareSdk(
        "http://sdk.local",
        units="lbs_per_mwh",
        signal=Signal.MOER,
        client=router.client(),
        sleep=Sleeps(),
    )
    s = sdk.forecast("eastus", start, start + timedelta(minutes=10))
    assert s.g_per_kwh == pytest.approx([453.59237, 453.59237])
    assert s.signal == Signal.MOER


def test_missing_credentials_say_which_variable() -> None:
    with pytest.raises(ProviderRejected, match="ELECTRICITYMAPS_API_TOKEN"):
        ElectricityMaps(None, client=Router().client()).forecast("DE", T, T)
    with pytest.raises(ProviderRejected, match="WATTTIME_USERNAME"):
        WattTime(None, None, client=Router().client()).forecast("X", T, T)
