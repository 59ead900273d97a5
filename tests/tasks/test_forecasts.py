from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prefect import flow
from prefect.blocks.system import Secret

from carbonshift.config import ForecastConfig
from tasks.forecasts import fetch_forecast, load_credentials
from tests.providers.local_server import serving
from tests.providers.shapes import em_forecast

pytestmark = pytest.mark.integration


def test_one_request_per_region_and_window(
    prefect_server: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several jobs in one zone cost one request: the disk cache (the one cache layer) serves
    the second call; Prefect's task cache is off."""
    monkeypatch.setenv("ELECTRICITYMAPS_API_TOKEN", "token-for-tests")
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    points = [(start + timedelta(hours=h), 120.0) for h in range(24)]
    hits: list[str] = []

    def forecast(handler: object) -> tuple[int, object]:
        hits.append("forecast")
        return 200, em_forecast(points)

    with serving({"/carbon-intensity/forecast": forecast}) as url:
        config = ForecastConfig(providers=["electricitymaps"], base_urls={"electricitymaps": url},
                                cache_dir=str(tmp_path / "disk"))
        @flow
        def twice() -> list[str]:
            sources = []
            for _ in range(2):
                state = fetch_forecast(
                    "aws:eu-central-1", start, start + timedelta(hours=6), config,
                    return_state=True,
                )
                served = state.result()
                assert state.name == "Completed"
                assert served is not None and served.series.g_per_kwh[0] == 120.0
                sources.append(served.source)
            return sources

        assert twice() == ["live", "cache"]
    assert hits == ["forecast"]


def test_nothing_answers_returns_none(prefect_server: None, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ELECTRICITYMAPS_API_TOKEN", raising=False)
    config = ForecastConfig(providers=["electricitymaps"], cache_dir=str(tmp_path))
    start = datetime(2020, 1, 1, tzinfo=UTC)

    @flow
    def once() -> object:
        return fetch_forecast("aws:eu-west-2", start, start + timedelta(hours=1), config)

    assert once() is None


def test_credentials_from_secret_blocks(prefect_server: None,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ELECTRICITYMAPS_API_TOKEN", "WATTTIME_USERNAME", "WATTTIME_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    Secret(value="from-a-block").save("electricitymaps-api-token", overwrite=True)
    Secret(value="alice").save("watttime-username", overwrite=True)
    creds = load_credentials()
    assert creds.electricitymaps_token is not None
    assert creds.electricitymaps_token.get_secret_value() == "from-a-block"
    assert creds.watttime_username == "alice"
    assert creds.watttime_password is None  # no block, no variable: the provider will say so
    monkeypatch.setenv("ELECTRICITYMAPS_API_TOKEN", "from-env")
    assert load_credentials().electricitymaps_token.get_secret_value() == "from-env"  # type: ignore[union-attr]
