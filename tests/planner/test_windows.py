"""Window maths, with cases ported from the Green Software Foundation Carbon Aware SDK
(src/CarbonAware/test/Extensions/EmissionsDataExtensionsTests.cs and the RollingAverage remarks)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carbonshift.planner.windows import RangeArgmin, lowest_steps_mean, window_means

SDK_DATA = np.array([10.0, 20.0, 30.0, 40.0])  # 5-minute points from 2020-01-01T00:00Z


@pytest.mark.parametrize(
    ("window_min", "expected"),
    [
        (5, [10.0, 20.0, 30.0, 40.0]),  # window == data granularity, tick == data granularity
        (10, [15.0, 25.0, 35.0]),  # window > data granularity
        (2, [10.0, 20.0, 30.0, 40.0]),  # window < data granularity
    ],
)
def test_rolling_average_matches_sdk(window_min: int, expected: list[float]) -> None:
    means = window_means(SDK_DATA, 300, window_min * 60)
    assert np.allclose(means[: len(expected)], expected)
    assert np.isnan(means[len(expected) :]).all()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([10, 20, 30, 40, 5], [15, 25, 35, 22.5]),
        ([5, 55, 10, 10, 10], [30, 32.5, 10, 10]),
        ([12, 11, 10, 12, 13], [11.5, 10.5, 11, 12.5]),
    ],
)
def test_sdk_remarks_examples(data: list[float], expected: list[float]) -> None:
    means = window_means(np.array(data, dtype=float), 300, 600)
    assert np.allclose(means[:-1], expected)


def test_partial_last_step_counts_in_proportion() -> None:
    # 7 minutes over 5-minute steps: 5 min at 10 and 2 min at 20.
    means = window_means(SDK_DATA, 300, 420)
    assert means[0] == pytest.approx((10 * 5 + 20 * 2) / 7)
    assert np.isnan(means[3])  # would need data past the end


def test_window_touching_missing_data_is_nan() -> None:
    values = np.array([[1.0, np.nan, 3.0, 4.0]])
    means = window_means(values, 300, 600)
    assert np.isnan(means[0, :2]).all()
    assert means[0, 2] == pytest.approx(3.5)


def test_lowest_steps_mean_takes_fraction_of_next() -> None:
    values = np.array([50.0, 10.0, 30.0, 20.0])
    assert lowest_steps_mean(values, 2.5) == pytest.approx((10 + 20 + 0.5 * 30) / 2.5)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 6), min_size=1, max_size=40),
    st.data(),
)
def test_range_argmin_is_earliest_minimum(values: list[int], data: st.DataObject) -> None:
    arr = np.array([values], dtype=float)
    lo = data.draw(st.integers(0, len(values) - 1))
    hi = data.draw(st.integers(lo, len(values) - 1))
    idx, key = RangeArgmin(arr).query(np.array([0]), np.array([lo]), np.array([hi]))
    segment = arr[0, lo : hi + 1]
    assert idx[0] == lo + int(np.argmin(segment))  # np.argmin returns the first minimum
    assert key[0] == segment.min()


def test_range_argmin_empty_and_all_nan_ranges() -> None:
    arr = np.array([[np.nan, np.nan, 1.0]])
    idx, key = RangeArgmin(arr).query(np.array([0, 0, 0]), np.array([0, 2, 3]), np.array([1, 1, 5]))
    assert list(idx) == [-1, -1, -1]
    assert np.isinf(key).all()
