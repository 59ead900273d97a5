from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from carbonshift.catalog import Catalog
from carbonshift.providers import ForecastCache, ForecastUnavailable, ProviderChain
from carbonshift.providers.electricitymaps import ElectricityMaps
from carbonshift.providers.static import Static
from carbonshift.providers.ukneso import UkNeso
from tests.providers.shapes import Router, Sleeps, em_forecast, neso_national

NOW = datetime(2023, 6, 1, tzinfo=UTC)
END = NOW + timedelta(hours=6)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def hourly(n: int = 6, base: float = 200.0) -> list[tuple[datetime, float | None]]:
    return [(NOW + timedelta(hours=h), base + h) for h in range(n)]


def chain_with(
    router: Router,
    tmp_path: Path,
    clock: Clock,
    catalog: Catalog | None = None,
    static: bool = False,
) -> ProviderChain:
    providers: list = [
        ElectricityMaps(SecretStr("secret-em"), client=router.client(), sleep=Sleeps(), clock=clock)
    ]
    if static:
        assert catalog is not None
        providers.append(Static(catalog))
    return ProviderChain(providers, cache=ForecastCache(tmp_path, clock=clock))


def test_live_then_cache_one_request_per_zone(tmp_path: Path) -> None:
    clock = Clock(NOW)
    router = Router().on("/carbon-intensity/forecast", em_forecast(hourly()))
    chain = chain_with(router, tmp_path, clock)
    first = chain.forecast("DE", NOW, END)
    second = chain.forecast("DE", NOW + timedelta(hours=1), END)
    assert (first.source, second.source) == ("live", "cache")
    assert first.series.source == "live:electricitymaps"
    assert second.series.source == "cache:electricitymaps"
    assert second.series.g_per_kwh[0] == 201.0
    assert router.count("/carbon-intensity/forecast") == 1


def test_expired_cache_asks_again(tmp_path: Path) -> None:
    clock = Clock(NOW)
    router = Router().on("/carbon-intensity/forecast", em_forecast(hourly()))
    chain = chain_with(router, tmp_path, clock)
    chain.forecast("DE", NOW, END)
    clock.now = NOW + timedelta(minutes=31)
    assert chain.forecast("DE", NOW + timedelta(hours=1), END).source == "live"
    assert router.count("/carbon-intensity/forecast") == 2


def test_provider_down_serves_stale_cache_marked_stale(tmp_path: Path) -> None:
    clock = Clock(NOW)
    router = Router().on("/carbon-intensity/forecast", em_forecast(hourly()))
    chain = chain_with(router, tmp_path, clock)
    chain.forecast("DE", NOW, END)
    clock.now = NOW + timedelta(hours=2)
    router.on("/carbon-intensity/forecast", httpx.Response(503))
    served = chain.forecast("DE", NOW + timedelta(hours=2), END)
    assert served.source == "stale-cache"
    assert served.series.source == "stale-cache:electricitymaps"
    assert served.series.start == NOW + timedelta(hours=2)
    assert "HTTP 503" in served.failures[0]


def test_everything_down_falls_back_to_static(tmp_path: Path, catalog: Catalog) -> None:
    router = Router().on("/carbon-intensity/forecast", httpx.Response(500))
    chain = chain_with(router, tmp_path, Clock(NOW), catalog, static=True)
    served = chain.forecast(catalog.region("aws:eu-central-1"), NOW, END)
    assert served.source == "static"
    assert served.series.source == "static"
    assert set(served.series.g_per_kwh) == {
        catalog.region("aws:eu-central-1").annual_mean_g_per_kwh
    }


def test_nothing_answers_without_static(tmp_path: Path) -> None:
    router = Router().on("/carbon-intensity/forecast", httpx.Response(500))
    chain = chain_with(router, tmp_path, Clock(NOW))
    with pytest.raises(ForecastUnavailable, match="no forecast for DE: electricitymaps: HTTP 500"):
        chain.forecast("DE", NOW, END)


def test_chain_moves_to_next_provider_with_its_own_zone(tmp_path: Path, catalog: Catalog) -> None:
    router = (
        Router()
        .on("/carbon-intensity/forecast", httpx.Response(404))
        .on("/fw48h", neso_national([(NOW + timedelta(minutes=30 * i), 150.0) for i in range(12)]))
    )
    chain = ProviderChain(
        [
            ElectricityMaps(SecretStr("k"), client=router.client(), sleep=Sleeps()),
            UkNeso(client=router.client(), sleep=Sleeps()),
        ]
    )
    served = chain.forecast(catalog.region("aws:eu-west-2"), NOW, END)
    assert (served.provider, served.zone, served.source) == ("ukneso", "GB", "live")
    assert "HTTP 404" in served.failures[0]
    assert router.requests[0].url.params["zone"] == "GB"


def test_cache_files_hold_the_series_only(tmp_path: Path) -> None:
    router = Router().on("/carbon-intensity/forecast", em_forecast(hourly()))
    chain_with(router, tmp_path, Clock(NOW)).forecast("DE", NOW, END)
    (path,) = tmp_path.rglob("*.json")
    record = json.loads(path.read_text())
    assert set(record) == {
        "format",
        "provider",
        "cache_id",
        "zone",
        "signal",
        "source",
        "fetched_at",
        "window_start_s",
        "window_end_s",
        "start_s",
        "step_s",
        "g_per_kwh",
        "fills",
    }
    assert "secret-em" not in path.read_text()
    assert "api.electricitymap.org" not in path.read_text()  # the address only as a digest
    # The window answered: the request, and the cache's 30 minutes more.
    assert (record["window_start_s"], record["window_end_s"]) == (
        int(NOW.timestamp()),
        int(END.timestamp()) + 1800,
    )
    bucket = int(NOW.timestamp()) // 1800
    folder, name = path.relative_to(tmp_path).parent.as_posix(), path.name
    assert folder == "electricitymaps/DE"
    assert name.startswith("lca-") and name.endswith(f"-{bucket}.json")


def test_corrupt_cache_entry_is_ignored(tmp_path: Path) -> None:
    clock = Clock(NOW)
    router = Router().on("/carbon-intensity/forecast", em_forecast(hourly()))
    chain = chain_with(router, tmp_path, clock)
    chain.forecast("DE", NOW, END)
    (path,) = tmp_path.rglob("*.json")
    path.write_text("{not json")
    assert chain.forecast("DE", NOW, END).source == "live"


def test_cached_forecast_that_ended_is_not_served_as_fresh(tmp_path: Path) -> None:
    clock = Clock(NOW)
    router = Router().on(
        "/carbon-intensity/forecast",
        em_forecast(hourly(2)),
        em_forecast([(NOW + timedelta(hours=h), 300.0) for h in range(2, 8)]),
    )
    chain = chain_with(router, tmp_path, clock)
    chain.forecast("DE", NOW, NOW + timedelta(hours=2))
    later = chain.forecast("DE", NOW + timedelta(hours=3), END)
    assert later.source == "live" and later.series.g_per_kwh[0] == 300.0


def test_actuals_come_from_the_first_provider_that_has_them(tmp_path: Path,
                                                            catalog: Catalog) -> None:
    body = {"zone": "DE", "data": [{"zone": "DE", "carbonIntensity": 250,
                                    "datetime": f"2023-06-01T0{h}:00:00.000Z"} for h in range(4)]}
    router = (Router().on("/carbon-intensity/past-range", body))
    em = ElectricityMaps(SecretStr("k"), client=router.client(), sleep=Sleeps(),
                         clock=Clock(NOW + timedelta(days=3)))
    chain = ProviderChain([Static(catalog), em])
    served = chain.actuals("DE", NOW, NOW + timedelta(hours=2))
    assert served.provider == "electricitymaps" and list(served.series.g_per_kwh) == [250, 250]
    with pytest.raises(ForecastUnavailable, match="no actuals"):
        ProviderChain([Static(catalog)]).actuals("DE", NOW, END)
