"""The grid monitor: compare actual intensity with the forecast the plan was made on, and decide
whether a run should step aside. Pure decisions (`assess`) and a loop with an injected clock."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from carbonshift.series import IntensitySeries, SeriesError

log = logging.getLogger("carbonshift.monitor")


class MonitorRule(BaseModel):
    """The re-plan rule: during the first hour (`first_hour_s`), after a grace period, actual
    intensity averaged over the last `window_s` more than `threshold` above the forecast for the
    same interval stops the run and re-plans the rest (at most `max_replans` times)."""

    model_config = ConfigDict(frozen=True)

    threshold: float = Field(default=0.20, ge=0, description="fraction above the forecast")
    first_hour_s: float = Field(default=3600.0, gt=0, description="the rule applies this long")
    window_s: float = Field(default=900.0, gt=0, description="actuals averaged over this")
    grace_s: float = Field(default=300.0, ge=0, description="no verdict this soon after start")
    interval_s: float = Field(default=300.0, gt=0, description="time between checks")
    max_replans: int = Field(default=2, ge=0, description="re-plans of one job at most")


class Verdict(StrEnum):
    CONTINUE = "continue"
    STOP = "stop-and-replan"
    HALT = "stop"  # stop at a checkpoint, no re-plan: the re-plan limit is reached


@dataclass(frozen=True)
class Assessment:
    verdict: Verdict
    reason: str
    at_s: float
    actual_g_per_kwh: float | None = None
    forecast_g_per_kwh: float | None = None


@dataclass(frozen=True)
class RunFacts:
    """What the rule needs to know about the run besides the two series."""

    started_s: float
    deadline_s: float
    remaining_s: float
    resume_overhead_s: float = 0.0
    replans: int = 0


def assess(
    planned: IntensitySeries | None,
    actual: IntensitySeries | None,
    facts: RunFacts,
    now_s: float,
    rule: MonitorRule,
) -> Assessment:
    elapsed = now_s - facts.started_s
    if elapsed < rule.grace_s:
        return Assessment(Verdict.CONTINUE, "grace period", now_s)
    if elapsed > rule.first_hour_s:
        return Assessment(Verdict.CONTINUE, "past the first hour: the run carries on", now_s)
    start = max(facts.started_s, now_s - rule.window_s)
    actual_mean = _mean(actual, start, now_s)
    if actual_mean is None:
        return Assessment(
            Verdict.CONTINUE, "actual intensity unavailable: the run carries on", now_s
        )
    forecast_mean = _mean(planned, start, now_s)
    if forecast_mean is None or forecast_mean <= 0:
        return Assessment(
            Verdict.CONTINUE, "no forecast for this interval to compare with", now_s, actual_mean
        )
    excess = actual_mean / forecast_mean - 1.0
    seen = Assessment(Verdict.CONTINUE, "", now_s, actual_mean, forecast_mean)
    if excess <= rule.threshold:
        return _with(seen, f"actual {actual_mean:.0f} g/kWh is {excess:+.0%} against the forecast")
    over = f"actual {actual_mean:.0f} g/kWh is {excess:+.0%} above the forecast {forecast_mean:.0f}"
    if facts.replans >= rule.max_replans:
        return _with(seen, f"{over}, but the job was already re-planned {facts.replans} times")
    if now_s + facts.resume_overhead_s + facts.remaining_s > facts.deadline_s:
        return _with(seen, f"{over}, but the deadline is too close to re-plan: carrying on")
    return Assessment(Verdict.STOP, over, now_s, actual_mean, forecast_mean)


@dataclass
class Watch:
    """The monitor loop. `wait(seconds)` returns True once training has ended (so the loop
    ends); `actuals(start_s, end_s)` returns the region's actual intensity or None."""

    planned: IntensitySeries | None
    facts: Callable[[], RunFacts]
    actuals: Callable[[float, float], IntensitySeries | None]
    clock: Callable[[], float]
    wait: Callable[[float], bool]
    rule: MonitorRule = field(default_factory=MonitorRule)
    interrupted: Callable[[], bool] = lambda: False
    on_tick: Callable[[float], None] = lambda now_s: None
    completed: Callable[[], bool] = lambda: False  # training ended with all its steps done
    history: list[Assessment] = field(default_factory=list)

    def run(self) -> Assessment | None:
        """The assessment that stopped the run, or None if training ended by itself."""
        while not self.wait(self.rule.interval_s):
            now = self.clock()
            self.on_tick(now)
            if self.interrupted():
                return self._interruption(now)
            facts = self.facts()
            try:
                actual = self.actuals(max(facts.started_s, now - self.rule.window_s), now)
            except Exception as e:  # noqa: BLE001 - a monitor never takes the run down
                log.warning("actuals unavailable: %s", e)
                actual = None
            verdict = assess(self.planned, actual, facts, now, self.rule)
            self.history.append(verdict)
            log.info("monitor: %s (%s)", verdict.verdict.value, verdict.reason)
            if verdict.verdict == Verdict.STOP:
                return verdict
        # Training ended by itself, or because the instance was interrupted: a VM that got a
        # spot notice checkpoints and stops before any tick could see the notice.
        if not self.completed() and self.interrupted():
            return self._interruption(self.clock())
        return None

    def _interruption(self, now: float) -> Assessment:
        limit = self.facts().replans >= self.rule.max_replans
        reason = (
            "the instance was interrupted (spot notice or loss): resume from the last checkpoint"
        )
        if limit:
            reason += f" (re-plan limit {self.rule.max_replans} reached: not re-planned)"
        stop = Assessment(Verdict.HALT if limit else Verdict.STOP, reason, now)
        self.history.append(stop)
        return stop


def _mean(series: IntensitySeries | None, start_s: float, end_s: float) -> float | None:
    if series is None or end_s <= start_s:
        return None
    try:
        return series.mean_over(start_s, end_s)
    except SeriesError:
        return None


def _with(base: Assessment, reason: str) -> Assessment:
    return Assessment(
        base.verdict, reason, base.at_s, base.actual_g_per_kwh, base.forecast_g_per_kwh
    )
