"""Test doubles for a supervised run: a clock that advances without sleeping, compute, a meter,
scripted actuals and a trainer that ends when the clock says its work is done."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from carbonshift.checkpoint import CheckpointManager, LocalStore
from carbonshift.compute import Instance, LaunchRequest
from carbonshift.plan import Explanation, PlannedSeries, Slot
from carbonshift.run import Placement
from carbonshift.series import IntensitySeries
from carbonshift.training import Progress, TrainingContext, TrainingOutcome
from tests.helpers import T0, series_at

START = T0.timestamp()
REGION = "aws:eu-west-2"


def slot(start: datetime = T0, hours: float = 1.0, region: str = REGION, g: float = 200.0) -> Slot:
    return Slot(
        region=region, instance_type="g5.xlarge", start=start,
        end=start + timedelta(hours=hours), duration_s=hours * 3600, mean_g_per_kwh=g,
        energy_kwh=0.3 * hours, emissions_kg=0.3 * hours * g / 1000, cost_usd=1.0,
        objective=0.3 * hours * g / 1000, source="test", signal="lca", coverage=1.0)


def no_checkpoints() -> CheckpointManager:
    """The fake trainer writes none; nothing is created on disk."""
    return CheckpointManager(LocalStore("unused", create=False))


def placement(
    deadline_h: float = 12.0, hours: float = 1.0, forecast_g: float | None = 200.0,
    home_g: float = 300.0, home_start: datetime = T0,
) -> Placement:
    forecast = None if forecast_g is None else PlannedSeries(
        start=T0, step_s=300, g_per_kwh=[forecast_g] * 72, signal="lca", source="test")
    home = slot(start=home_start, hours=hours, region="aws:us-east-1", g=home_g)
    explanation = Explanation(
        reason="greenest", runner_up=None, now_home=home, savings_kg=0.0, savings_fraction=0.0,
        energy_estimate="1 x A10G 300 W = 0.3 kWh", forecast_source="test")
    return Placement(job="j", slot=slot(hours=hours), deadline=T0 + timedelta(hours=deadline_h),
                     forecast=forecast, explanation=explanation)


class FakeClock:
    """`wait` moves time on by its timeout at once. Alarms set an event at a given time: a fake
    trainer ends on one, and then `wait` waits for the trainer thread to finish (progress, not
    time), so every run has the same ticks."""

    def __init__(self, start: float = START) -> None:
        self.t = start
        self.alarms: list[tuple[float, threading.Event]] = []
        self.waits = 0

    def now(self) -> float:
        return self.t

    def alarm(self, at_s: float, event: threading.Event) -> None:
        self.alarms.append((at_s, event))

    def wait(self, event: threading.Event, timeout_s: float) -> bool:
        self.waits += 1
        target = self.t + timeout_s
        due = [a for a in self.alarms if a[0] <= target]
        if not due:
            self.t = target
            return event.is_set()
        self.t = max(self.t, min(at for at, _ in due))
        for a in due:
            self.alarms.remove(a)
            a[1].set()
        return event.wait(30.0)


class FakeCompute:
    name = "fake"

    def __init__(self, clock: FakeClock, interrupted_at: float | None = None,
                 broken_at: float | None = None, refuse: bool = False) -> None:
        self.clock = clock
        self.interrupted_at = interrupted_at
        self.broken_at = broken_at
        self.refuse = refuse
        self.held: dict[str, Instance] = {}
        self.released: list[str] = []

    def provision(self, request: LaunchRequest) -> Instance:
        if self.refuse:
            raise RuntimeError("no capacity")
        run_id = request.run_id
        self.held[run_id] = Instance(
            run_id, "fake", request.region, request.instance_type, f"i-{run_id}", request.job,
            request.spot)
        return self.held[run_id]

    def release(self, run_id: str) -> bool:
        self.released.append(run_id)
        return self.held.pop(run_id, None) is not None

    def find(self, run_id: str) -> Instance | None:
        return self.held.get(run_id)

    def interrupted(self, run_id: str) -> bool:
        if self.broken_at is not None and self.clock.now() >= self.broken_at:
            raise ConnectionError("compute API unreachable")
        return self.interrupted_at is not None and self.clock.now() >= self.interrupted_at


class FakeMeter:
    label = "fake: 300 W"

    def __init__(self, clock: FakeClock, power_w: float = 300.0) -> None:
        self.clock = clock
        self.t0 = clock.now()
        self.power_w = power_w

    def read_j(self) -> float:
        return self.power_w * (self.clock.now() - self.t0)


class ScriptedActuals:
    """Actual intensity: `g_per_kwh` from the start (None: unavailable), `later_g` from
    `later_s` seconds after it; or an error."""

    def __init__(self, g_per_kwh: float | None, error: Exception | None = None,
                 later_s: float = 24 * 3600, later_g: float = 0.0) -> None:
        self.g_per_kwh = g_per_kwh
        self.error = error
        self.later_s = later_s
        self.later_g = later_g
        self.calls: list[tuple[float, float]] = []

    def actuals(self, start_s: float, end_s: float) -> IntensitySeries | None:
        self.calls.append((start_s, end_s))
        if self.error is not None:
            raise self.error
        if self.g_per_kwh is None:
            return None
        later = self.later_g
        values = [self.g_per_kwh if m * 300 < self.later_s else later for m in range(-12, 276)]
        return series_at(values, start=T0 - timedelta(hours=1))


class ScriptedTrainer:
    """Trains until the clock reaches `end_s` (the clock's alarm sets ctx.stop then) or until
    it is asked to stop; reports progress once and ends as a stopped or completed outcome."""

    def __init__(self, clock: FakeClock, ctx: TrainingContext, end_s: float,
                 total_steps: int = 100, crash: BaseException | None = None) -> None:
        self.clock = clock
        self.start_s = clock.now()
        self.end_s = end_s
        self.total_steps = total_steps
        self.crash = crash
        self.returned = False  # set as the trainer returns or raises
        clock.alarm(end_s, ctx.stop)

    def __call__(self, ctx: TrainingContext) -> TrainingOutcome:
        try:
            return self._train(ctx)
        finally:
            self.returned = True

    def _train(self, ctx: TrainingContext) -> TrainingOutcome:
        if not ctx.stop.wait(30.0):
            raise TimeoutError("the test never ended the trainer")
        if self.crash is not None:
            raise self.crash
        done = self.clock.now() >= self.end_s
        fraction = (self.clock.now() - self.start_s) / (self.end_s - self.start_s)
        step = self.total_steps if done else int(self.total_steps * fraction)
        if ctx.on_progress is not None:
            ctx.on_progress(Progress(step, self.total_steps))
        uri = f"mem://ckpt-{step:012d}" if step else None
        return TrainingOutcome(done, step, self.total_steps, uri,
                               None if done else "stop requested")


Factory = Callable[[FakeClock, TrainingContext], ScriptedTrainer]
