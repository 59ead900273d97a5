from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from carbonshift.series import IntensitySeries, SeriesError, Signal, SignalMismatch, common_signal
from tests.conftest import T0, make_series


def _times(n: int, step_min: int = 60) -> list[datetime]:
    return [T0 + timedelta(minutes=step_min * i) for i in range(n)]


def build(times: list[datetime], values: list[float | None], **kw: object) -> IntensitySeries:
    return IntensitySeries.from_points(times, values, signal="lca", source="test", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("times", "values", "message"),
    [
        (_times(3)[::-1], [1.0, 2.0, 3.0], "not sorted"),
        ([T0, T0, T0 + timedelta(hours=1)], [1.0, 2.0, 3.0], "duplicate"),
        (_times(3), [1.0, float("nan"), 3.0], "nan, not a finite number"),
        (_times(3), [1.0, None, 3.0], "is missing"),
        (_times(3), [1.0, -2.0, 3.0], "negative"),
        (_times(3), [1.0, 2500.0, 3.0], "above 2000"),
        ([T0, T0 + timedelta(hours=1), T0 + timedelta(hours=4)], [1.0, 2.0, 3.0], "gap of 180 min"),
        (
            [T0, T0 + timedelta(minutes=7), T0 + timedelta(minutes=14)],
            [1.0, 2.0, 3.0],
            "resolution",
        ),
        ([], [], "empty"),
    ],
)
def test_validation_errors_name_the_problem(
    times: list[datetime], values: list[float | None], message: str
) -> None:
    with pytest.raises(SeriesError, match=message):
        build(times, values)


def test_error_names_index_and_timestamp() -> None:
    with pytest.raises(SeriesError, match=r"value 1 \(2020-01-01T01:00:00\+00:00\)"):
        build(_times(3), [1.0, -1.0, 2.0])


def test_naive_timestamps_are_rejected() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        build([datetime(2020, 1, 1), datetime(2020, 1, 1, 1)], [1.0, 2.0])


def test_short_gaps_filled_only_when_asked_and_recorded() -> None:
    times = [T0, T0 + timedelta(hours=1), T0 + timedelta(hours=3)]
    with pytest.raises(SeriesError, match=r"1 missing steps of 60 min\): add the missing data"):
        build(times, [10.0, 20.0, 40.0])
    s = build(times, [10.0, 20.0, 40.0], fill_gaps_up_to=1)
    assert list(s.g_per_kwh) == [10.0, 20.0, 30.0, 40.0]
    assert len(s.fills) == 1
    assert s.fills[0].points == 1
    assert s.fills[0].start_s == int((T0 + timedelta(hours=2)).timestamp())
    with pytest.raises(SeriesError, match="gap"):
        build([T0, T0 + timedelta(hours=4)], [1.0, 2.0], step_s=3600, fill_gaps_up_to=2)


def test_mixed_resolution_is_time_weighted() -> None:
    # 30-minute data with one hour split into 15-minute points: the mode (30 min) is the step.
    times = [T0 + timedelta(minutes=m) for m in (0, 30, 45, 60, 90)]
    s = build(times, [10.0, 20.0, 40.0, 50.0, 60.0])
    assert s.step_s == 1800
    assert list(s.g_per_kwh) == [10.0, 30.0, 50.0, 60.0]


def test_resample_up_and_down() -> None:
    hourly = make_series([10.0, 30.0], step_s=3600)
    assert list(hourly.resample(1800).g_per_kwh) == [10.0, 10.0, 30.0, 30.0]
    fine = make_series([10.0, 20.0, 30.0, 40.0], step_s=900)
    assert list(fine.resample(3600).g_per_kwh) == [25.0]


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [  # Carbon Aware SDK AverageOverPeriod cases on 5-minute [10, 20, 30, 40]
        ("2020-01-01T00:00:00Z", "2020-01-01T00:20:00Z", 25.00),
        ("2020-01-01T00:04:00Z", "2020-01-01T00:20:00Z", 28.75),
        ("2020-01-01T00:00:00Z", "2020-01-01T00:16:00Z", 21.25),
        ("2020-01-01T00:02:30Z", "2020-01-01T00:17:30Z", 25.00),
        ("2020-01-01T00:02:00Z", "2020-01-01T00:03:00Z", 10.00),
    ],
)
def test_mean_over_matches_sdk(start: str, end: str, expected: float) -> None:
    s = make_series([10.0, 20.0, 30.0, 40.0])
    a = datetime.fromisoformat(start.replace("Z", "+00:00")).timestamp()
    b = datetime.fromisoformat(end.replace("Z", "+00:00")).timestamp()
    assert round(s.mean_over(a, b), 2) == expected


def test_mean_over_outside_data_is_an_error() -> None:
    s = make_series([10.0, 20.0])
    with pytest.raises(SeriesError, match="data covers"):
        s.mean_over(s.start_s, s.end_s + 60)


def test_signals_are_never_mixed() -> None:
    a = make_series([1.0], signal=Signal.LCA)
    b = make_series([1.0], signal=Signal.MOER)
    with pytest.raises(SignalMismatch, match="cannot be compared"):
        common_signal([a, b])


def test_values_are_read_only() -> None:
    s = make_series([1.0, 2.0])
    with pytest.raises(ValueError):
        s.g_per_kwh[0] = 5.0


def test_slice_keeps_overlapping_points() -> None:
    s = make_series(np.arange(10.0), step_s=3600)
    part = s.slice(s.start_s + 5400, s.start_s + 3 * 3600 + 1)
    assert part.start == T0 + timedelta(hours=1)
    assert list(part.g_per_kwh) == [1.0, 2.0, 3.0]
    assert part.start.tzinfo == UTC
