from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from carbonshift.series import Signal
from carbonshift.traces import (
    TraceError,
    bundled_traces_dir,
    read_electricitymaps_csv,
    read_trace,
    read_traces,
    traces_in,
)

EM_HEADER = (
    "Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),"
    "Carbon Intensity gCO₂eq/kWh (LCA),Low Carbon Percentage,Renewable Percentage,"
    "Data Source,Data Estimated,Data Estimation Method\n"
)


def test_bundled_gb_2023_trace() -> None:
    s = read_trace(bundled_traces_dir() / "GB_2023_hourly.csv")
    assert s.zone == "GB"
    assert s.step_s == 3600
    assert len(s) == 8760
    assert s.start.isoformat() == "2023-01-01T00:00:00+00:00"
    assert s.g_per_kwh[0] == pytest.approx(91.44)  # first row's LCA column
    assert s.g_per_kwh.mean() == pytest.approx(188, abs=1)  # SOURCES.md: mean LCA 188
    direct = read_trace(bundled_traces_dir() / "GB_2023_hourly.csv", signal="direct")
    assert direct.signal == Signal.DIRECT
    assert direct.g_per_kwh[0] == pytest.approx(62.55)
    assert s.source == "replay:electricitymaps:GB_2023_hourly.csv"


def test_zone_id_column_wins_over_file_name() -> None:
    s = read_trace(bundled_traces_dir() / "DE-LU_2023_hourly.csv")
    assert s.zone == "DE"


def test_bundled_traces_by_zone() -> None:
    by_zone = read_traces(traces_in(bundled_traces_dir()))
    assert {"DE", "GB", "US-CAL-CISO", "US-MIDA-PJM"} <= set(by_zone)


def test_years_are_joined(tmp_path: Path) -> None:
    a = tmp_path / "X_2022.csv"
    b = tmp_path / "X_2023.csv"
    a.write_text("timestamp,g\n2022-12-31T22:00:00Z,1\n2022-12-31T23:00:00Z,2\n")
    b.write_text("timestamp,g\n2023-01-01T00:00:00Z,3\n2023-01-01T01:00:00Z,4\n")
    (joined,) = read_traces([b, a]).values()
    assert list(joined.g_per_kwh) == [1, 2, 3, 4]


def test_generic_csv_with_offsets_and_mixed_steps(tmp_path: Path) -> None:
    path = tmp_path / "FR.csv"
    path.write_text(
        "timestamp,intensity\n2020-01-01T01:00:00+01:00,60\n2020-01-01T00:30:00Z,80\n"
        "2020-01-01T00:45:00Z,100\n2020-01-01T01:00:00Z,70\n2020-01-01T01:30:00Z,50\n"
        "2020-01-01T02:00:00Z,40\n"
    )
    s = read_trace(path)
    assert s.zone == "FR"
    assert s.step_s == 1800  # the most common interval
    assert list(s.g_per_kwh) == [60, 90, 70, 50, 40]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            "2023-01-01 00:00:00,GB,GB,GB,1,2,,,,,\n2023-01-01 01:00:00,GB,GB,GB,1,,,,,,\n",
            "value 1 .* is missing",
        ),
        (
            "2023-01-01 01:00:00,GB,GB,GB,1,2,,,,,\n2023-01-01 00:00:00,GB,GB,GB,1,2,,,,,\n",
            "sorted",
        ),
        (
            "2023-01-01 00:00:00,GB,GB,GB,1,2,,,,,\n2023-01-01 01:00:00,GB,GB,GB,1,2,,,,,\n"
            "2023-01-01 04:00:00,GB,GB,GB,1,2,,,,,\n",
            "gap of 180 min",
        ),
        (
            "2023-01-01 00:00:00,GB,GB,GB,1,2,,,,,\n2023-01-01 01:00:00,GB,GB,GB,1,-2,,,,,\n",
            "negative",
        ),
    ],
)
def test_bad_trace_rows_name_the_file_and_point(tmp_path: Path, rows: str, message: str) -> None:
    path = tmp_path / "GB_bad.csv"
    path.write_text(EM_HEADER + rows)
    with pytest.raises(TraceError, match=message) as info:
        read_electricitymaps_csv(path)
    assert "GB_bad.csv" in str(info.value)


def test_unknown_format_says_what_is_expected(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("when,value\n2020-01-01T00:00Z,1\n")
    with pytest.raises(TraceError, match="Electricity Maps export"):
        read_trace(path)


def test_generic_csv_needs_exactly_one_value_column(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("timestamp,a,b\n2020-01-01T00:00Z,1,2\n")
    with pytest.raises(TraceError, match="one g/kWh column"):
        read_trace(path)


def test_moer_is_not_in_electricitymaps_exports() -> None:
    with pytest.raises(TraceError, match="lca or direct"):
        read_trace(bundled_traces_dir() / "GB_2023_hourly.csv", signal="moer")


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="no .csv traces"):
        traces_in(tmp_path)


def test_values_are_float64() -> None:
    s = read_trace(bundled_traces_dir() / "NO_2023_hourly.csv")
    assert s.g_per_kwh.dtype == np.float64


def test_an_unchanged_file_is_parsed_once_a_changed_one_again(tmp_path: Path) -> None:
    path = tmp_path / "GB_test.csv"
    path.write_text("timestamp,g\n2023-01-01T00:00Z,100\n2023-01-01T01:00Z,200\n")
    first = read_trace(path)
    assert read_trace(path) is first
    assert read_trace(str(path), signal=Signal.DIRECT) is not first  # another signal
    path.write_text("timestamp,g\n2023-01-01T00:00Z,100\n2023-01-01T01:00Z,30\n")  # another size
    again = read_trace(path)
    assert again is not first
    assert again.g_per_kwh.tolist() == [100.0, 30.0]
    link = tmp_path / "DE_link.csv"
    link.symlink_to(path)  # the same file under another name: its own zone and source
    linked = read_trace(link)
    assert (linked.zone, linked.source) == ("DE", "replay:csv:DE_link.csv")
    path.unlink()
    with pytest.raises(TraceError, match="cannot read it"):
        read_trace(path)
