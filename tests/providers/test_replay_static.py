from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from carbonshift.catalog import Catalog
from carbonshift.job import JobSpec
from carbonshift.planner import plan_jobs
from carbonshift.providers import ProviderRejected
from carbonshift.providers.replay import Replay
from carbonshift.providers.static import Static
from carbonshift.traces import bundled_traces_dir, read_trace
from tests.providers.shapes import fixed

GB = read_trace(bundled_traces_dir() / "GB_2023_hourly.csv")


def test_replay_as_recorded() -> None:
    replay = Replay({"GB": GB})
    start = datetime(2023, 3, 1, tzinfo=UTC)
    s = replay.forecast("GB", start, start + timedelta(hours=3))
    assert s.start == start and len(s) == 3
    assert s.source == "replay:electricitymaps:GB_2023_hourly.csv"
    assert list(s.g_per_kwh) == list(
        GB.slice(start.timestamp(), start.timestamp() + 10800).g_per_kwh
    )


def test_replay_as_of_now_shifts_the_same_day_onto_today() -> None:
    now = datetime(2026, 11, 27, 14, 20, tzinfo=UTC)
    replay = Replay({"GB": GB}, as_of_now=True, clock=fixed(now))
    s = replay.forecast("GB", now, now + timedelta(hours=2))
    assert s.start == datetime(2026, 11, 27, 14, tzinfo=UTC)  # whole steps: on the hour
    recorded = GB.mean_over(
        datetime(2023, 11, 27, 14, tzinfo=UTC).timestamp(),
        datetime(2023, 11, 27, 15, tzinfo=UTC).timestamp(),
    )
    assert s.g_per_kwh[0] == recorded
    assert "as of now (recorded from 2023-11-27T14:20Z)" in s.source


def test_replay_unknown_zone() -> None:
    with pytest.raises(ProviderRejected, match="no trace for zone 'FR'"):
        Replay({"GB": GB}).forecast(
            "FR", datetime(2023, 1, 1, tzinfo=UTC), datetime(2023, 1, 2, tzinfo=UTC)
        )


def test_static_series_makes_the_planner_use_0200_local(catalog: Catalog) -> None:
    start = datetime(2023, 1, 1, 12, tzinfo=UTC)
    static = Static(catalog).forecast("DE", start, start + timedelta(hours=24))
    assert static.source == "static"
    job = JobSpec.model_validate(
        {
            "name": "j",
            "work": {"duration": "1h", "instance_type": "g5.xlarge"},
            "within": "24h",
            "regions": ["aws:eu-central-1"],
        }
    )
    (plan,) = plan_jobs([job], {"aws:eu-central-1": static}, now=start, catalog=catalog)
    assert plan.chosen.source == "static"
    assert plan.chosen.start == datetime(2023, 1, 2, 1, tzinfo=UTC)  # 02:00 in Frankfurt
