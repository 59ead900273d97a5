from __future__ import annotations

from pathlib import Path

import pytest

from carbonshift.energy import EstimateMeter, RaplMeter, Sample, account, open_meter
from tests.helpers import T0, series_at

S = T0.timestamp()


def test_estimate_meter_is_labelled() -> None:
    now = [0.0]
    meter = EstimateMeter(300.0, lambda: now[0], "1 x A10G 300 W")
    now[0] = 3600.0
    assert meter.read_j() == pytest.approx(300 * 3600)
    assert meter.label.startswith("estimate: ")


def test_rapl_counts_across_wrap(tmp_path: Path) -> None:
    zone = tmp_path / "intel-rapl:0"
    zone.mkdir()
    (zone / "max_energy_range_uj").write_text("1000000")
    (zone / "energy_uj").write_text("900000")
    meter = RaplMeter(tmp_path)
    (zone / "energy_uj").write_text("100000")  # wrapped: +200000 uJ
    assert meter.read_j() == pytest.approx(0.2)
    (zone / "energy_uj").write_text("600000")
    assert meter.read_j() == pytest.approx(0.7)


def test_open_meter_falls_back_to_estimate(tmp_path: Path) -> None:
    meter = open_meter(100.0, lambda: 0.0, "x", rapl_root=tmp_path, prefer_rapl=True)
    assert meter.label == "estimate: x"


def test_emissions_per_interval_and_counterfactual() -> None:
    actual = series_at([100.0] * 12 + [300.0] * 12, step_min=5)  # 2 h: clean, then dirty
    samples = [Sample(S + 3600, 0.0), Sample(S + 5400, 3.6e6), Sample(S + 7200, 7.2e6)]
    # Ran 01:00-02:00 (300 g/kWh) for 2 kWh; had it started at once (1 h earlier): 100 g/kWh.
    result = account(samples, actual, None, actual, shift_s=3600, fallback_g_per_kwh=999)
    assert result.energy_kwh == pytest.approx(2.0)
    assert result.emissions_kg == pytest.approx(0.6)
    assert result.counterfactual_kg == pytest.approx(0.2)
    assert result.savings_kg == pytest.approx(-0.4)
    assert result.intensity_source == "actual"


def test_missing_actuals_use_forecast_then_fallback() -> None:
    forecast = series_at([200.0] * 12, step_min=5)
    samples = [Sample(S, 0.0), Sample(S + 1800, 1.8e6), Sample(S + 7200, 3.6e6)]
    result = account(samples, None, forecast, None, shift_s=0, fallback_g_per_kwh=400)
    assert result.emissions_kg == pytest.approx(0.5 * 0.2 + 0.5 * 0.4)
    assert result.intensity_source == "fallback+forecast"


def test_rapl_applies_the_pue_once_and_says_so(tmp_path: Path) -> None:
    zone = tmp_path / "intel-rapl:0"
    zone.mkdir()
    (zone / "max_energy_range_uj").write_text("1000000")
    (zone / "energy_uj").write_text("0")
    meter = open_meter(1.0, lambda: 0.0, "x", rapl_root=tmp_path, prefer_rapl=True, pue=1.15)
    assert isinstance(meter, RaplMeter) and meter.pue == 1.15
    assert meter.label == "measured: RAPL (CPU packages) x PUE 1.15"
    (zone / "energy_uj").write_text("200000")
    assert meter.read_j() == pytest.approx(0.2 * 1.15)
    assert RaplMeter(tmp_path).label == "measured: RAPL (CPU packages)"
    with pytest.raises(ValueError, match="pue: 0.5 is below 1"):
        RaplMeter(tmp_path, pue=0.5)


def test_the_estimate_states_the_pue_its_power_has_in_it() -> None:
    meter = open_meter(345.0, lambda: 0.0, "x", pue=1.15)
    assert isinstance(meter, EstimateMeter) and meter.pue == 1.15 and meter.power_w == 345.0
    assert EstimateMeter(1.0, lambda: 0.0, "x").pue is None  # not known: the records look it up
