"""The monitor's rule with scripted actual series, and its loop on an injected clock."""

from __future__ import annotations

import pytest

from carbonshift.monitor import Assessment, MonitorRule, RunFacts, Verdict, Watch, assess
from tests.helpers import T0, series_at

START = T0.timestamp()
RULE = MonitorRule()
FORECAST = series_at([200.0] * 36, step_min=5)  # 3 h of 200 g/kWh


def facts(**kw: float) -> RunFacts:
    base = {"started_s": START, "deadline_s": START + 12 * 3600, "remaining_s": 3600.0}
    return RunFacts(**{**base, **kw})  # type: ignore[arg-type]


def actual(values_by_5min: list[float]) -> object:
    return series_at(values_by_5min, step_min=5)


@pytest.mark.parametrize(("minute", "actual_value", "verdict", "reason"), [
    (3, 400.0, Verdict.CONTINUE, "grace period"),
    (20, 230.0, Verdict.CONTINUE, "+15% against"),
    (20, 260.0, Verdict.STOP, "+30% above the forecast 200"),
    (50, 260.0, Verdict.STOP, "+30% above"),
    (70, 400.0, Verdict.CONTINUE, "past the first hour"),
])
def test_rule_in_and_after_the_first_hour(minute: int, actual_value: float, verdict: Verdict,
                                          reason: str) -> None:
    a = assess(FORECAST, series_at([actual_value] * 36, step_min=5), facts(), START + minute * 60,
               RULE)
    assert a.verdict == verdict
    assert reason in a.reason


def test_averages_over_the_window() -> None:
    # One spike 5 minutes long in a 15-minute window: 200, 200, 400 -> +33%.
    values = [200.0] * 3 + [400.0] + [200.0] * 32
    a = assess(FORECAST, series_at(values, step_min=5), facts(), START + 20 * 60, RULE)
    assert a.actual_g_per_kwh == pytest.approx((200 + 200 + 400) / 3)
    assert a.verdict == Verdict.STOP


def test_no_actuals_keeps_running() -> None:
    a = assess(FORECAST, None, facts(), START + 20 * 60, RULE)
    assert a.verdict == Verdict.CONTINUE and "unavailable" in a.reason
    stale = series_at([500.0] * 2, step_min=5)  # actuals stop before the window
    assert assess(FORECAST, stale, facts(), START + 20 * 60, RULE).verdict == Verdict.CONTINUE


def test_deadline_too_close_keeps_running() -> None:
    close = facts(deadline_s=START + 20 * 60 + 3000, remaining_s=3000, resume_overhead_s=60)
    a = assess(FORECAST, series_at([400.0] * 36, step_min=5), close, START + 20 * 60, RULE)
    assert a.verdict == Verdict.CONTINUE and "deadline is too close" in a.reason


def test_never_loops_past_max_replans() -> None:
    a = assess(FORECAST, series_at([400.0] * 36, step_min=5), facts(replans=2), START + 1200, RULE)
    assert a.verdict == Verdict.CONTINUE and "already re-planned 2 times" in a.reason


class FakeTime:
    def __init__(self, start: float, ticks_until_done: int) -> None:
        self.now = start
        self.left = ticks_until_done

    def clock(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.now += seconds
        self.left -= 1
        return self.left < 0


def test_loop_stops_on_the_first_bad_tick() -> None:
    time = FakeTime(START, ticks_until_done=100)
    actuals = series_at([200.0] * 4 + [300.0] * 32, step_min=5)  # dirtier from 00:20
    ticks: list[float] = []
    watch = Watch(FORECAST, facts, lambda a, b: actuals, time.clock, time.wait,
                  on_tick=ticks.append)
    stopped = watch.run()
    assert isinstance(stopped, Assessment) and stopped.verdict == Verdict.STOP
    # At 00:25 the 15-minute window is a third dirty (+17%); at 00:30 two thirds (+33%).
    assert stopped.at_s == START + 30 * 60
    assert [a.verdict for a in watch.history][:-1] == [Verdict.CONTINUE] * 5
    assert len(ticks) == 6


def test_loop_ends_with_training_and_survives_provider_errors() -> None:
    time = FakeTime(START, ticks_until_done=3)

    def broken(a: float, b: float) -> None:
        raise RuntimeError("provider down")

    watch = Watch(FORECAST, facts, broken, time.clock, time.wait)
    assert watch.run() is None
    assert all("unavailable" in a.reason or "grace" in a.reason for a in watch.history)


def test_interruption_takes_the_stop_path() -> None:
    time = FakeTime(START, ticks_until_done=100)
    watch = Watch(FORECAST, facts, lambda a, b: None, time.clock, time.wait,
                  interrupted=lambda: time.now >= START + 600)
    stopped = watch.run()
    assert stopped is not None and "interrupted" in stopped.reason


def test_an_interruption_that_ended_training_between_ticks_still_stops_the_run() -> None:
    # The VM saw its spot notice, checkpointed and stopped before any tick looked.
    time = FakeTime(START, ticks_until_done=0)
    watch = Watch(FORECAST, facts, lambda a, b: None, time.clock, time.wait,
                  interrupted=lambda: True)
    stopped = watch.run()
    assert stopped is not None and stopped.verdict == Verdict.STOP
    assert "interrupted" in stopped.reason and watch.history == [stopped]


def test_a_completed_run_is_not_called_interrupted() -> None:
    time = FakeTime(START, ticks_until_done=0)
    watch = Watch(FORECAST, facts, lambda a, b: None, time.clock, time.wait,
                  interrupted=lambda: True, completed=lambda: True)
    assert watch.run() is None and watch.history == []
