"""A credential never appears in a log line, an exception message, a cached file or CLI output,
even when a server echoes the request's headers back in its error bodies."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from carbonshift.providers import Credentials, ForecastCache, ProviderChain, ProviderError
from carbonshift.providers.electricitymaps import ElectricityMaps
from carbonshift.providers.watttime import WattTime
from tests.providers.local_server import serving
from tests.providers.shapes import Sleeps, em_forecast, fixed, watttime

EM_KEY = "em-FAKE-KEY-3c9d1f"
WT_PASSWORD = "wt-FAKE-PASSWORD-77"
WT_TOKEN = "wt-FAKE-TOKEN-5e2"
SECRETS = (EM_KEY, WT_PASSWORD, WT_TOKEN)
NOW = datetime(2023, 6, 8, tzinfo=UTC)


def echo(request: httpx.Request) -> str:
    return " ".join(f"{k}={v}" for k, v in request.headers.items())


def leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


def test_secrets_stay_out_of_errors_logs_and_cache(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    points = [(NOW + timedelta(hours=h), 100.0) for h in range(4)]
    wt_points = [(NOW + timedelta(minutes=5 * i), 900.0) for i in range(12)]
    echoing: list[object] = []

    def em_handler(request: httpx.Request) -> httpx.Response:
        echoing.append(request)
        n = len(echoing)
        if n <= 1:
            return httpx.Response(500, text=f"upstream error, you sent {echo(request)}")
        if n == 2:
            return httpx.Response(400, text=f"bad request with {echo(request)}")
        if n == 3:
            return httpx.Response(200, text=f"not json {echo(request)}")
        return httpx.Response(200, json=em_forecast(points))

    def wt_handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/login":
            return httpx.Response(200, json={"token": WT_TOKEN})
        if "fail" in request.url.params.get("region", ""):
            return httpx.Response(403, text=f"forbidden for {echo(request)}")
        return httpx.Response(200, json=watttime(wt_points))

    em = ElectricityMaps(
        SecretStr(EM_KEY),
        client=httpx.Client(transport=httpx.MockTransport(em_handler)),
        sleep=Sleeps(),
    )
    wt = WattTime(
        "me",
        SecretStr(WT_PASSWORD),
        client=httpx.Client(transport=httpx.MockTransport(wt_handler)),
        sleep=Sleeps(),
        clock=fixed(NOW),
    )
    cache = ForecastCache(tmp_path, clock=fixed(NOW))
    messages: list[str] = []
    for _ in range(3):
        try:
            ProviderChain([em], cache=cache).forecast("DE", NOW, NOW + timedelta(hours=4))
        except Exception as e:  # noqa: BLE001 - collecting what a user would see
            messages += [str(e), repr(e)]
    served = ProviderChain([em, wt], cache=cache).forecast("DE", NOW, NOW + timedelta(hours=4))
    assert served.source == "cache"  # the third try above succeeded and was cached
    with pytest.raises(ProviderError) as info:
        wt.forecast("fail-region", NOW, NOW + timedelta(hours=1))
    messages += [str(info.value), repr(info.value)]
    ProviderChain([wt], cache=cache).forecast("CAISO_NORTH", NOW, NOW + timedelta(hours=1))

    assert any("HTTP 400" in m for m in messages)  # the echoing error did reach us, scrubbed
    assert any("***" in m for m in messages)
    assert not leaks("\n".join(messages))
    assert not leaks(caplog.text)
    cached = list(tmp_path.rglob("*.json"))
    assert len(cached) == 2
    assert not leaks("\n".join(p.read_text() for p in cached))
    creds = Credentials(
        electricitymaps_token=SecretStr(EM_KEY), watttime_password=SecretStr(WT_PASSWORD)
    )
    assert not leaks(repr(creds) + str(creds.model_dump()))


def test_cli_output_has_no_secret(tmp_path: Path) -> None:
    def refuse(handler: BaseHTTPRequestHandler) -> tuple[int, object]:
        return 401, f"token {handler.headers.get('auth-token')} refused"

    env = {
        **os.environ,
        "ELECTRICITYMAPS_API_TOKEN": EM_KEY,
        "WATTTIME_USERNAME": "me",
        "WATTTIME_PASSWORD": WT_PASSWORD,
        "CARBONSHIFT_CACHE_DIR": str(tmp_path),
    }
    exe = Path(sys.executable).with_name("carbonshift")
    with serving({"/carbon-intensity/forecast": refuse}) as url:
        failed = subprocess.run(
            [
                str(exe),
                "forecast",
                "--provider",
                "electricitymaps",
                "--zone",
                "DE",
                "--base-url",
                url,
                "--json",
            ],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
    assert failed.returncode != 0
    assert "HTTP 401" in failed.stderr
    assert failed.stderr.count("\n") == 1
    assert not leaks(failed.stdout + failed.stderr)
