"""The forecast cache under attack: windows it does not cover, two addresses or trace folders
sharing one folder, a folder that is a file, read-only or full, corrupt entries, odd retry waits
and odd `--hours`. A cache is an optimisation: it never serves what it does not have and never
fails a forecast a provider could give."""

from __future__ import annotations

import errno
import json
import math
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from carbonshift.catalog import Catalog
from carbonshift.cli import main
from carbonshift.providers import ForecastCache, ForecastUnavailable, ProviderChain
from carbonshift.providers.electricitymaps import ElectricityMaps
from carbonshift.providers.http import RetryPolicy
from carbonshift.providers.replay import Replay
from carbonshift.providers.static import Static
from carbonshift.series import IntensitySeries, Signal
from tests.providers.local_server import serving
from tests.providers.shapes import Router, Sleeps, em_forecast

NOW = datetime(2023, 6, 1, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def hourly(n: int, base: float = 200.0, start: datetime = NOW) -> list[tuple[datetime, float]]:
    return [(start + timedelta(hours=h), base + h) for h in range(n)]


def em(router: Router, clock: Clock) -> ElectricityMaps:
    return ElectricityMaps(SecretStr("em-key-for-tests"), client=router.client(), sleep=Sleeps(),
                           clock=clock)


def cache(tmp_path: Path, clock: Clock, **kw: Any) -> ForecastCache:
    return ForecastCache(tmp_path / "cache", clock=clock, **kw)


# -- the window ------------------------------------------------------------------------------


def test_a_short_cached_window_does_not_answer_a_longer_request(tmp_path: Path) -> None:
    clock = Clock(NOW)
    router = Router().on("/carbon-intensity/forecast", em_forecast(hourly(72)))
    chain = ProviderChain([em(router, clock)], cache=cache(tmp_path, clock))
    six = chain.forecast("DE", NOW, NOW + timedelta(hours=6))
    clock.now = NOW + timedelta(minutes=10)
    later = NOW + timedelta(minutes=10)
    forty_eight = chain.forecast("DE", later, later + timedelta(hours=48))
    assert six.source == "live" and len(six.series) == 6
    assert forty_eight.source == "live" and len(forty_eight.series) == 49
    assert router.count("/carbon-intensity/forecast") == 2
    # ... and the longer answer covers the shorter request repeated while it is fresh.
    clock.now = NOW + timedelta(minutes=20)
    again = chain.forecast("DE", clock.now, clock.now + timedelta(hours=6))
    assert again.source == "cache" and router.count("/carbon-intensity/forecast") == 2


def test_the_same_request_repeated_while_fresh_is_served_from_cache(tmp_path: Path) -> None:
    clock = Clock(NOW)
    router = Router().on("/carbon-intensity/forecast", em_forecast(hourly(72)))
    chain = ProviderChain([em(router, clock)], cache=cache(tmp_path, clock))
    chain.forecast("DE", NOW, NOW + timedelta(hours=48))
    clock.now = NOW + timedelta(minutes=25)
    served = chain.forecast("DE", clock.now, clock.now + timedelta(hours=48))
    assert served.source == "cache" and served.series.covers(
        clock.now.timestamp(), (clock.now + timedelta(hours=48)).timestamp()
    )


def test_a_stale_entry_serves_only_a_window_it_covers(tmp_path: Path, catalog: Catalog) -> None:
    clock = Clock(NOW)
    router = Router().on("/carbon-intensity/forecast", em_forecast(hourly(72)))
    provider = em(router, clock)
    chain = ProviderChain([provider], cache=cache(tmp_path, clock))
    chain.forecast("DE", NOW, NOW + timedelta(hours=6))
    clock.now = NOW + timedelta(hours=2)
    router.on("/carbon-intensity/forecast", httpx.Response(503))
    with pytest.raises(ForecastUnavailable):
        chain.forecast("DE", clock.now, clock.now + timedelta(hours=48))
    # Inside what it answered, the stale entry still serves.
    inside = chain.forecast("DE", clock.now, clock.now + timedelta(hours=3))
    assert inside.source == "stale-cache" and len(inside.series) == 3
    with_static = ProviderChain([provider, Static(catalog)], cache=cache(tmp_path, clock))
    region = catalog.region("aws:eu-central-1")
    assert with_static.forecast(region, clock.now, clock.now + timedelta(hours=48)).source == (
        "static"
    )


def test_two_addresses_never_answer_for_each_other(tmp_path: Path) -> None:
    clock = Clock(NOW)
    one = Router().on("/carbon-intensity/forecast", em_forecast(hourly(12, base=100.0)))
    two = Router().on("/carbon-intensity/forecast", em_forecast(hourly(12, base=400.0)))
    shared = cache(tmp_path, clock)
    first = ElectricityMaps(SecretStr("k-1-for-tests"), base_url="http://one.local",
                            client=one.client(), sleep=Sleeps(), clock=clock)
    second = ElectricityMaps(SecretStr("k-2-for-tests"), base_url="http://two.local",
                             client=two.client(), sleep=Sleeps(), clock=clock)
    end = NOW + timedelta(hours=6)
    assert ProviderChain([first], cache=shared).forecast("DE", NOW, end).series.g_per_kwh[0] == 100
    served = ProviderChain([second], cache=shared).forecast("DE", NOW, end)
    assert served.source == "live" and served.series.g_per_kwh[0] == 400


def test_two_trace_sets_never_answer_for_each_other(tmp_path: Path) -> None:
    clock = Clock(NOW)

    def trace(value: float) -> dict[str, IntensitySeries]:
        start = int(NOW.timestamp())
        return {"DE": IntensitySeries(start, 3600, np.full(24, value), Signal.LCA, "t", "DE")}

    shared = cache(tmp_path, clock)
    end = NOW + timedelta(hours=6)
    a = ProviderChain([Replay(trace(100.0))], cache=shared).forecast("DE", NOW, end)
    b = ProviderChain([Replay(trace(300.0))], cache=shared).forecast("DE", NOW, end)
    assert (a.series.g_per_kwh[0], b.series.g_per_kwh[0]) == (100.0, 300.0)


def test_a_zone_cannot_climb_out_of_the_cache_folder(tmp_path: Path) -> None:
    clock = Clock(NOW)
    router = Router().on("/carbon-intensity/forecast", em_forecast(hourly(12)))
    chain = ProviderChain([em(router, clock)], cache=cache(tmp_path, clock))
    for zone in ("..", ".", "a/../../b"):
        chain.forecast(zone, NOW, NOW + timedelta(hours=2))
    for path in tmp_path.rglob("*.json"):
        assert path.resolve().is_relative_to((tmp_path / "cache" / "electricitymaps").resolve())


def test_zones_that_share_a_file_name_do_not_share_entries(tmp_path: Path) -> None:
    clock = Clock(NOW)
    router = Router().on(
        "/carbon-intensity/forecast",
        em_forecast(hourly(12, base=100.0)),
        em_forecast(hourly(12, base=500.0)),
    )
    chain = ProviderChain([em(router, clock)], cache=cache(tmp_path, clock))
    end = NOW + timedelta(hours=2)
    chain.forecast("aws:eu-central-1", NOW, end)
    other = chain.forecast("aws_eu-central-1", NOW, end)
    assert other.source == "live" and other.series.g_per_kwh[0] == 500.0


def test_failures_are_not_cached(tmp_path: Path) -> None:
    clock = Clock(NOW)
    router = Router().on(
        "/carbon-intensity/forecast", httpx.Response(400), em_forecast(hourly(12))
    )
    chain = ProviderChain([em(router, clock)], cache=cache(tmp_path, clock))
    with pytest.raises(ForecastUnavailable):
        chain.forecast("DE", NOW, NOW + timedelta(hours=2))
    assert list(tmp_path.rglob("*.json")) == []
    assert chain.forecast("DE", NOW, NOW + timedelta(hours=2)).source == "live"


# -- an unusable cache ------------------------------------------------------------------------


def full_disk(path: Path, text: str) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def read_only(path: Path, text: str) -> None:
    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))


@pytest.mark.parametrize("write", [full_disk, read_only], ids=["disk-full", "read-only"])
def test_a_cache_that_cannot_write_warns_once_and_serves_live(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, write: Callable[[Path, str], None]
) -> None:
    clock = Clock(NOW)
    router = Router().on("/carbon-intensity/forecast", em_forecast(hourly(12)))
    chain = ProviderChain([em(router, clock)], cache=cache(tmp_path, clock, write=write))
    for zone in ("DE", "FR", "DE"):
        assert chain.forecast(zone, NOW, NOW + timedelta(hours=2)).source == "live"
    warnings = [r for r in caplog.records if "cache" in r.getMessage()]
    assert len(warnings) == 1 and "unusable" in warnings[0].getMessage()


def test_the_cli_with_a_file_where_the_cache_folder_should_be(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ELECTRICITYMAPS_API_TOKEN", "em-key-for-tests")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("I am a file")
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    with serving({"/carbon-intensity/forecast": (200, em_forecast(hourly(72, start=now)))}) as url:
        for cache_dir in (blocker, blocker / "below"):
            code = main(["forecast", "--provider", "electricitymaps,static", "--zone", "DE",
                         "--base-url", url, "--hours", "6", "--json", "--cache-dir",
                         str(cache_dir)])
            out = capsys.readouterr()
            assert code == 0, out.err
            assert json.loads(out.out)["source"] == "live"
    assert blocker.read_text() == "I am a file"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_cache_folder_serves_live(tmp_path: Path) -> None:
    clock = Clock(NOW)
    folder = tmp_path / "cache"
    folder.mkdir()
    folder.chmod(0o500)
    router = Router().on("/carbon-intensity/forecast", em_forecast(hourly(12)))
    try:
        served = ProviderChain([em(router, clock)], cache=ForecastCache(folder, clock=clock))
        assert served.forecast("DE", NOW, NOW + timedelta(hours=2)).source == "live"
    finally:
        folder.chmod(0o700)


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    clock = Clock(NOW)
    written: list[Path] = []

    def half_then_full(path: Path, text: str) -> None:
        from carbonshift.providers.cache import write_atomically

        written.append(path)
        write_atomically(path, text)
        raise OSError(errno.ENOSPC, "No space left on device")

    router = Router().on("/carbon-intensity/forecast", em_forecast(hourly(12)))
    chain = ProviderChain([em(router, clock)], cache=cache(tmp_path, clock, write=half_then_full))
    assert chain.forecast("DE", NOW, NOW + timedelta(hours=2)).source == "live"
    assert [p for p in tmp_path.rglob("*") if p.suffix == ".tmp"] == []


# -- corrupt entries -------------------------------------------------------------------------


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], Any]:
    def mutate(record: dict[str, Any]) -> Any:
        return {**record, key: value}

    return mutate


CORRUPTIONS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "truncated": lambda r: json.dumps(r)[:40],
    "a list": lambda r: [r],
    "values as text": _set("g_per_kwh", ["abc", "def"]),
    "values NaN": lambda r: {**r, "g_per_kwh": [math.nan] * len(r["g_per_kwh"])},
    "values Infinity": lambda r: {**r, "g_per_kwh": [math.inf] * len(r["g_per_kwh"])},
    "values negative": lambda r: {**r, "g_per_kwh": [-5.0] * len(r["g_per_kwh"])},
    "values booleans": lambda r: {**r, "g_per_kwh": [True] * len(r["g_per_kwh"])},
    "start_s text": _set("start_s", "soon"),
    "start_s huge": _set("start_s", 10**30),
    "step_s 7": _set("step_s", 7),
    "fills garbage": _set("fills", [["a"]]),
    "fetched_at naive": _set("fetched_at", "2023-06-01T00:00:00"),
    "fetched_at number": _set("fetched_at", 5),
    "fetched_at in the future": _set("fetched_at", "2999-01-01T00:00:00+00:00"),
    "source a number": _set("source", 42),
    "missing values": lambda r: {k: v for k, v in r.items() if k != "g_per_kwh"},
}


@pytest.mark.parametrize("corrupt", list(CORRUPTIONS), ids=list(CORRUPTIONS))
def test_a_corrupt_entry_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, corrupt: str
) -> None:
    clock = Clock(NOW)
    router = Router().on(
        "/carbon-intensity/forecast",
        em_forecast(hourly(12, base=100.0)),
        em_forecast(hourly(12, base=300.0)),
    )
    chain = ProviderChain([em(router, clock)], cache=cache(tmp_path, clock))
    end = NOW + timedelta(hours=6)
    chain.forecast("DE", NOW, end)
    (path,) = tmp_path.rglob("*.json")
    bad = CORRUPTIONS[corrupt](json.loads(path.read_text()))
    path.write_text(bad if isinstance(bad, str) else json.dumps(bad))
    caplog.clear()
    served = chain.forecast("DE", NOW, end)
    assert served.source == "live" and served.series.g_per_kwh[0] == 300.0
    assert any("cache entry" in r.getMessage() for r in caplog.records)


# -- retries ---------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    u=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
    jitter=st.floats(min_value=0.0, max_value=1.0),
    attempt=st.integers(min_value=0, max_value=20),
)
def test_backoff_waits_are_jittered_within_bounds(u: float, jitter: float, attempt: int) -> None:
    policy = RetryPolicy(jitter=jitter, uniform=lambda: u)
    step = policy.backoff_s[min(attempt, len(policy.backoff_s) - 1)]
    wait = policy.delay(attempt)
    assert step * (1 - jitter) - 1e-9 <= wait <= step * (1 + jitter) + 1e-9


def test_jitter_spreads_the_waits_and_retry_after_is_still_honoured() -> None:
    draws = iter([0.0, 0.999, 0.5])
    router = Router().on(
        "/carbon-intensity/forecast",
        httpx.Response(503),
        httpx.Response(503),
        httpx.Response(429, headers={"Retry-After": "7"}),
        httpx.Response(429, headers={"Retry-After": "nan"}),
        em_forecast(hourly(12)),
    )
    sleeps = Sleeps()
    provider = ElectricityMaps(
        SecretStr("em-key-for-tests"), client=router.client(), sleep=sleeps,
        retry=RetryPolicy(attempts=5, uniform=lambda: next(draws)),
    )
    provider.forecast("DE", NOW, NOW + timedelta(hours=2))
    assert sleeps.waits[0] == pytest.approx(0.4)
    assert sleeps.waits[1] == pytest.approx(2.0 * 1.1996)
    assert sleeps.waits[2] == 7.0  # as the server asked, no jitter
    assert sleeps.waits[3] == pytest.approx(5.0)  # "nan" is no wait: our own backoff
    assert all(math.isfinite(w) and 0 <= w <= 60 for w in sleeps.waits)


# -- --hours ---------------------------------------------------------------------------------


@pytest.mark.parametrize("hours", ["1e9", "nan", "inf", "-inf", "0", "-3", "1e400"])
def test_hours_out_of_range_is_one_line_naming_the_option(
    hours: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(["forecast", "--provider", "static", "--region", "aws:eu-central-1",
                 f"--hours={hours}", "--no-cache"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "--hours" in err and "Traceback" not in err
