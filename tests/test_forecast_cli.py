from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from carbonshift.cli import main
from tests.providers.local_server import serving
from tests.providers.shapes import em_forecast, neso_national


def run(capsys: pytest.CaptureFixture[str], command: str) -> tuple[int, str, str]:
    code = main(command.split())
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CARBONSHIFT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("ELECTRICITYMAPS_API_TOKEN", "token-for-tests")


def _hour() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def test_electricitymaps_json_contract(capsys: pytest.CaptureFixture[str]) -> None:
    points = [(_hour() + timedelta(hours=h), 100.0 + h) for h in range(72)]
    with serving({"/carbon-intensity/forecast": (200, em_forecast(points))}) as url:
        code, out, _ = run(capsys, f"forecast --provider electricitymaps --zone DE --hours 6 "
                                   f"--base-url {url} --json")
    assert code == 0
    result = json.loads(out)
    assert {"provider", "zone", "signal", "source", "points"} <= set(result)
    assert (result["provider"], result["zone"], result["signal"], result["source"]) == (
        "electricitymaps", "DE", "lca", "live")
    assert len(result["points"]) == 7  # the current hour and six more
    assert result["points"][0] == {"start": _hour().isoformat(), "g_per_kwh": 100.0}


def test_second_call_is_served_from_cache(capsys: pytest.CaptureFixture[str]) -> None:
    points = [(_hour() + timedelta(hours=h), 100.0) for h in range(72)]
    with serving({"/carbon-intensity/forecast": (200, em_forecast(points))}) as url:
        run(capsys, f"forecast --provider electricitymaps --zone DE --base-url {url} --json")
    # The server is gone: only the cache can answer now. (The same address: entries of
    # another address never answer, see test_two_addresses_never_answer_for_each_other.)
    code, out, _ = run(capsys, "forecast --provider electricitymaps --zone DE "
                               f"--base-url {url} --retries 0 --json")
    assert code == 0
    assert json.loads(out)["source"] == "cache"


def test_region_maps_to_the_providers_zone(capsys: pytest.CaptureFixture[str]) -> None:
    start = datetime.now(UTC).replace(second=0, microsecond=0)
    start = start.replace(minute=0 if start.minute < 30 else 30)
    points = [(start + timedelta(minutes=30 * i), 150.0) for i in range(96)]
    with serving({"/intensity/": (200, neso_national(points))}) as url:
        code, out, _ = run(capsys, f"forecast --provider ukneso --region aws:eu-west-2 "
                                   f"--base-url {url} --json")
    result = json.loads(out)
    assert code == 0 and result["zone"] == "GB" and result["signal"] == "direct"


def test_chain_falls_back_to_static(capsys: pytest.CaptureFixture[str]) -> None:
    with serving({"/": (503, "down")}) as url:
        code, out, _ = run(capsys, f"forecast --provider electricitymaps,static --region "
                                   f"gcp:europe-west4 --hours 3 --base-url {url} --retries 0 "
                                   "--json")
    result = json.loads(out)
    assert code == 0
    assert (result["provider"], result["source"], result["zone"]) == ("static", "static", "NL")
    assert "HTTP 503" in result["failures"][0]


def test_nothing_answers_is_one_line_and_non_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with serving({"/": (503, "down")}) as url:
        code, out, err = run(capsys, f"forecast --provider electricitymaps --zone DE "
                                     f"--base-url {url} --no-cache --retries 0")
    assert code != 0 and out == ""
    assert err.count("\n") == 1 and err.startswith("carbonshift: error: no forecast for DE")


def test_replay_as_of_now(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "forecast --provider replay --region aws:us-west-1 --hours 2 --json")
    result = json.loads(out)
    assert code == 0 and result["zone"] == "US-CAL-CISO"
    assert "as of now" in result["series_source"]
    assert result["points"][0]["start"] == _hour().isoformat()


def test_unknown_provider(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "forecast --provider tea-leaves --zone DE")
    assert code == 2 and "unknown provider 'tea-leaves'" in err
