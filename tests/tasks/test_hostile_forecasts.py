"""The forecast task against hostile and unlucky servers: two configurations never get each
other's forecasts, a failure is not remembered, and nothing the task logs quotes a secret."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from prefect import flow

from carbonshift.config import ForecastConfig
from tasks.forecasts import fetch_forecast
from tests.providers.hostile import ENV, echo, leaks
from tests.providers.local_server import Answer, serving
from tests.providers.shapes import em_forecast

pytestmark = pytest.mark.integration

REGION = "aws:eu-central-1"


def hour() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def test_two_configurations_get_their_own_forecasts(
    prefect_server: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ELECTRICITYMAPS_API_TOKEN", "token-for-tests")
    start = hour()
    end = start + timedelta(hours=6)

    def body(value: float) -> Answer:
        return 200, em_forecast([(start + timedelta(hours=h), value) for h in range(24)])

    with serving({"/carbon-intensity/forecast": body(100.0)}) as one, serving(
        {"/carbon-intensity/forecast": body(400.0)}
    ) as two:
        configs = [
            ForecastConfig(providers=["electricitymaps"], base_urls={"electricitymaps": url},
                           cache_dir=str(tmp_path / "one"))
            for url in (one, two)
        ] + [
            # The same address, another cache folder: its own (identical) answer.
            ForecastConfig(providers=["electricitymaps"], base_urls={"electricitymaps": two},
                           cache_dir=str(tmp_path / "two")),
            ForecastConfig(providers=["replay"], replay_as_of_now=True),
            ForecastConfig(providers=["replay"], replay_as_of_now=False),
        ]

        @flow
        def each() -> list[object]:
            out = []
            for config in configs:
                served = fetch_forecast(REGION, start, end, config)
                out.append(None if served is None else float(served.series.g_per_kwh[0]))
            return out

        values = each()
    assert values[:3] == [100.0, 400.0, 400.0]
    assert values[3] is not None and values[4] is None  # the unshifted 2023 trace has no today


def test_a_failure_is_not_remembered(
    prefect_server: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ELECTRICITYMAPS_API_TOKEN", "token-for-tests")
    start = hour()
    answers: list[Answer] = [
        (400, {"error": "try later"}),
        (200, em_forecast([(start + timedelta(hours=h), 150.0) for h in range(24)])),
    ]

    def forecast(handler: BaseHTTPRequestHandler) -> Answer:
        return answers.pop(0) if len(answers) > 1 else answers[0]

    with serving({"/carbon-intensity/forecast": forecast}) as url:
        config = ForecastConfig(providers=["electricitymaps"], base_urls={"electricitymaps": url},
                                cache_dir=str(tmp_path))

        @flow
        def twice() -> list[object]:
            return [fetch_forecast(REGION, start, start + timedelta(hours=6), config)
                    for _ in range(2)]

        first, second = twice()
    assert first is None
    assert second is not None and second.series.g_per_kwh[0] == 150.0  # type: ignore[attr-defined]


def test_flow_logs_never_quote_a_secret(
    prefect_server: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str],
) -> None:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    caplog.set_level(logging.DEBUG)
    start = hour()

    def forbidden(handler: BaseHTTPRequestHandler) -> Answer:
        return 403, "x" * 190 + echo(handler)

    def bad_time(handler: BaseHTTPRequestHandler) -> Answer:
        return 200, {"forecast": [{"datetime": echo(handler), "carbonIntensity": 1.0}]}

    def bad_units(handler: BaseHTTPRequestHandler) -> Answer:
        return 200, {"data": [], "meta": {"units": echo(handler)}}

    routes = {
        "/em/carbon-intensity/forecast": forbidden,
        "/em2/carbon-intensity/forecast": bad_time,
        "/wt/login": (200, {"token": ENV["WATTTIME_PASSWORD"][:3] + "tok-9f8e7d6c5b"}),
        "/wt/v3/forecast": bad_units,
    }
    with serving(routes) as url:
        configs = [
            ForecastConfig(providers=["electricitymaps", "watttime", "static"],
                           base_urls={"electricitymaps": f"{url}/em", "watttime": f"{url}/wt"},
                           cache_dir=str(tmp_path)),
            ForecastConfig(providers=["electricitymaps", "watttime"],
                           base_urls={"electricitymaps": f"{url}/em2", "watttime": f"{url}/wt"},
                           cache_dir=str(tmp_path)),
        ]

        @flow
        def hostile() -> list[object]:
            return [fetch_forecast(REGION, start, start + timedelta(hours=6), c) for c in configs]

        served, nothing = hostile()
    assert served is not None and nothing is None
    console = capfd.readouterr()  # Prefect's console handler: the flow's log as a user sees it
    files = [p.read_text() for p in tmp_path.rglob("*") if p.is_file()]
    text = "\n".join([caplog.text, console.out, console.err, *files])
    assert "HTTP 403" in text and "***" in text
    assert not leaks(text)
    assert "tok-9f8e7d6c5b" not in text  # the login token, learnt at login
