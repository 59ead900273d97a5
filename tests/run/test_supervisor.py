"""The supervised run on a fake clock, fake compute, scripted actuals and a fake trainer: each
rule of the monitor, the interruptions and the crashes, asserted on the RunReport. Nothing
sleeps: the clock moves on when the monitor waits."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from carbonshift.monitor import MonitorRule, Verdict
from carbonshift.run import Placement, RunReport, Supervisor
from carbonshift.run.supervisor import Clock, _Progress
from carbonshift.training import Progress, TrainingContext, TrainingOutcome
from tests.helpers import job
from tests.run.fakes import (
    REGION,
    START,
    FakeClock,
    FakeCompute,
    FakeMeter,
    ScriptedActuals,
    ScriptedTrainer,
    no_checkpoints,
    placement,
)

RULE = MonitorRule()  # 20% over the forecast, first hour, 15-min window, 5-min grace and ticks
JOB = job("j", work={"duration": "1h", "instance_type": "g5.xlarge"}, resume_overhead="2m",
          within="12h")


@dataclass
class Run:
    """One supervised run's parts, so that a test changes only what it is about."""

    clock: FakeClock = field(default_factory=FakeClock)
    actual_g: float | None = 200.0
    actuals_error: Exception | None = None
    where: Placement = field(default_factory=placement)
    rule: MonitorRule = RULE
    trains_for_s: float = 1800.0
    crash: BaseException | None = None
    replans: int = 0
    interrupted_at: float | None = None
    broken_at: float | None = None
    refuse: bool = False
    progress: list[Progress] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.compute = FakeCompute(self.clock, self.interrupted_at, self.broken_at, self.refuse)
        self.actuals = ScriptedActuals(self.actual_g, self.actuals_error)
        self.ctx = TrainingContext(no_checkpoints(), on_progress=self.progress.append)
        self.trainer = ScriptedTrainer(self.clock, self.ctx, START + self.trains_for_s,
                                       crash=self.crash)

    def supervise(self, clock: Clock | None = None) -> RunReport:
        supervisor = Supervisor(self.compute, FakeMeter(self.clock), self.actuals,
                                clock or self.clock, self.rule)
        return supervisor.run(JOB, self.where, "run-1", self.ctx, self.trainer, self.replans)


def reasons(report: RunReport) -> list[str]:
    return [a.reason for a in report.history]


def test_a_run_on_forecast_completes_accounts_and_releases() -> None:
    run = Run(actual_g=200.0, trains_for_s=1800.0)
    report = run.supervise()
    assert report.outcome == TrainingOutcome(True, 100, 100, "mem://ckpt-000000000100", None)
    assert report.verdict is None and not report.replan and report.error is None
    assert report.released and run.compute.held == {} and report.instance == "i-run-1"
    assert report.region == REGION and report.meter_label == "fake: 300 W"
    # A sample at the start, one per 5-minute tick (300 .. 1500 s), one at the end (1800 s).
    assert [s.at_s - START for s in report.samples] == [0, 300, 600, 900, 1200, 1500, 1800]
    assert len(report.history) == 5 and all("+0% against" in r for r in reasons(report))
    acc = report.accounting
    assert acc.energy_kwh == pytest.approx(300 * 1800 / 3.6e6)  # 0.15 kWh
    assert acc.emissions_kg == pytest.approx(0.15 * 0.200)
    assert acc.counterfactual_kg == pytest.approx(0.15 * 0.300)  # the home baseline, 300 g/kWh
    assert acc.intensity_source == "actual" and acc.intervals == 6
    assert run.progress == [Progress(100, 100)]  # the caller's progress callback still hears


def test_first_hour_rule_stops_and_asks_for_a_replan() -> None:
    run = Run(actual_g=260.0, trains_for_s=3 * 3600)  # +30% over the 200 g/kWh forecast
    report = run.supervise()
    assert report.verdict is not None and report.verdict.verdict == Verdict.STOP
    assert "+30% above the forecast 200" in report.verdict.reason
    assert report.verdict.at_s == START + 300  # the first tick past the grace period
    assert report.outcome is not None and not report.outcome.completed
    assert report.outcome.step == 2  # 300 s of 3 h: the trainer stopped where the monitor said
    assert report.replan and report.stopped_by == report.verdict.reason
    assert report.released and report.error is None


def test_at_the_threshold_the_run_carries_on() -> None:
    report = Run(actual_g=240.0).supervise()  # exactly +20%: not above it
    assert report.verdict is None and report.outcome is not None and report.outcome.completed


def test_grace_period_comes_first() -> None:
    run = Run(actual_g=400.0, rule=MonitorRule(grace_s=600.0), trains_for_s=3600)
    report = run.supervise()
    assert reasons(report)[0] == "grace period"
    assert report.verdict is not None and report.verdict.at_s == START + 600 and report.replan


@pytest.mark.parametrize(("first_s", "stops_at_s"), [(600.0, None), (3600.0, 900.0)])
def test_only_the_first_hour_counts(first_s: float, stops_at_s: float | None) -> None:
    # On forecast for 10 minutes, then twice the forecast.
    run = Run(rule=MonitorRule(first_hour_s=first_s), trains_for_s=1800)
    run.actuals.later_s, run.actuals.later_g = 600.0, 400.0
    report = run.supervise()
    if stops_at_s is None:
        assert report.verdict is None
        assert all("past the first hour" in r for r in reasons(report)[2:])
    else:
        assert report.verdict is not None and report.verdict.at_s == START + stops_at_s
        assert "+33% above" in report.verdict.reason  # (200 + 200 + 400) / 3 over the window


def test_deadline_too_close_to_replan_carries_on() -> None:
    # 1 h of work, 2 min resume overhead, deadline 62 min after the start: no room to move.
    run = Run(actual_g=400.0, where=placement(deadline_h=62 / 60), trains_for_s=3600)
    report = run.supervise()
    assert report.verdict is None and not report.replan
    assert report.outcome is not None and report.outcome.completed
    assert all("deadline is too close" in r for r in reasons(report)[:11])
    assert len(report.history) == 11  # ticks at 5 .. 55 min


def test_no_actuals_keeps_running() -> None:
    for run in (Run(actual_g=None), Run(actuals_error=ConnectionError("provider down"))):
        report = run.supervise()
        assert report.verdict is None and report.error is None
        assert report.outcome is not None and report.outcome.completed
        assert all("unavailable" in r for r in reasons(report))
        # Energy is still accounted, on the forecast the plan was made on.
        assert report.accounting.intensity_source == "forecast"
        assert report.accounting.emissions_kg == pytest.approx(0.15 * 0.200)


def test_no_forecast_to_compare_with_keeps_running() -> None:
    report = Run(actual_g=900.0, where=placement(forecast_g=None)).supervise()
    assert report.verdict is None
    assert all("no forecast for this interval" in r for r in reasons(report))


def test_max_replans_reached_runs_on() -> None:
    report = Run(actual_g=400.0, replans=2, trains_for_s=1800).supervise()
    assert report.verdict is None and not report.replan
    assert report.outcome is not None and report.outcome.completed
    assert "already re-planned 2 times" in reasons(report)[0]
    once = Run(actual_g=400.0, replans=1).supervise()
    assert once.verdict is not None and once.replan


def test_spot_interruption_stops_and_asks_for_a_replan() -> None:
    run = Run(actual_g=200.0, interrupted_at=START + 600, trains_for_s=3600)
    report = run.supervise()
    assert report.verdict is not None and "interrupted" in report.verdict.reason
    assert report.verdict.at_s == START + 600
    assert report.outcome is not None and report.outcome.step == 16  # 600 s of 3600
    assert report.replan and report.released and report.error is None


def test_a_crash_in_the_trainer_is_reported_and_the_instance_released() -> None:
    run = Run(crash=ValueError("loss is NaN"), trains_for_s=900)
    report = run.supervise()
    assert report.outcome is None and not report.replan
    assert report.error == "training failed: ValueError: loss is NaN"
    assert report.released and run.compute.held == {} and run.compute.released == ["run-1"]
    assert report.accounting.energy_kwh == pytest.approx(300 * 900 / 3.6e6)


def test_a_crash_in_the_monitor_stops_the_run_and_is_reported() -> None:
    run = Run(broken_at=START + 900, trains_for_s=3600)
    report = run.supervise()
    assert report.error == "monitor failed: ConnectionError: compute API unreachable"
    assert run.ctx.stop.is_set()
    assert report.outcome is not None and not report.outcome.completed
    assert report.outcome.step == 25  # stopped at the 900 s tick, at a checkpoint
    assert report.verdict is None and not report.replan
    assert report.released and run.compute.held == {}


def test_a_failed_provision_still_releases_and_raises() -> None:
    run = Run(refuse=True)
    with pytest.raises(RuntimeError, match="no capacity"):
        run.supervise()
    assert run.compute.released == ["run-1"]  # whatever half of it a cloud may hold


class CancellingClock(FakeClock):
    """A cancellation arrives (as a BaseException) while the monitor waits."""

    def wait(self, event: object, timeout_s: float) -> bool:
        raise KeyboardInterrupt


def test_a_cancelled_run_asks_the_trainer_to_stop_and_releases() -> None:
    run = Run(trains_for_s=3600)
    release, trainer_returned = run.compute.release, []

    def release_after_the_trainer(run_id: str) -> bool:
        trainer_returned.append(run.trainer.returned)
        return release(run_id)

    run.compute.release = release_after_the_trainer  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        run.supervise(clock=CancellingClock())
    assert run.ctx.stop.is_set() and run.compute.released == ["run-1"]
    # released only once the trainer had stopped at its checkpoint
    assert trainer_returned == [True]


def test_an_interruption_past_the_replan_limit_stops_without_a_replan() -> None:
    run = Run(actual_g=200.0, interrupted_at=START + 600, trains_for_s=3600,
              replans=RULE.max_replans)
    report = run.supervise()
    assert report.verdict is not None and report.verdict.verdict is Verdict.HALT
    assert "re-plan limit 2 reached" in report.verdict.reason
    assert not report.replan and report.released and report.error is None
    assert report.outcome is not None and report.outcome.step == 16


def test_a_trainer_that_exits_is_reported_not_lost() -> None:
    run = Run(crash=SystemExit(3), trains_for_s=900)
    report = run.supervise()
    assert report.outcome is None and report.error == "training failed: SystemExit: 3"
    assert report.released and not report.replan


def test_a_resumed_run_reports_where_it_started_and_its_remaining_time() -> None:
    """The deadline check uses the time this run has left: its slot covers only the rest of
    the job, so steps count from the resume point."""
    progress = _Progress(None)
    assert progress.left() == 1.0 and progress.base == 0
    progress(Progress(51, 100))  # resumed at 50: the first report is step 51
    progress(Progress(75, 100))
    assert progress.base == 50 and progress.left() == pytest.approx(0.5)


def test_with_neither_actuals_nor_forecast_the_run_regions_static_figure_is_charged() -> None:
    # A run moved by failover has no forecast; with no actuals either, each interval is charged
    # the fallback the supervisor was given (its region's annual mean), not the home's mean.
    run = Run(actual_g=None, trains_for_s=1800.0,
              where=placement(forecast_g=None, home_g=300.0))
    supervisor = Supervisor(run.compute, FakeMeter(run.clock), run.actuals, run.clock, run.rule,
                            fallback_g_per_kwh=50.0)
    report = supervisor.run(JOB, run.where, "run-1", run.ctx, run.trainer, run.replans)
    acc = report.accounting
    assert acc.energy_kwh == pytest.approx(0.3 * 0.5)  # 300 W for half an hour
    assert acc.emissions_kg == pytest.approx(acc.energy_kwh * 50.0 / 1000)
    assert acc.intensity_source == "fallback"
