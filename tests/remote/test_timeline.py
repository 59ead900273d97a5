"""A remote run's energy per interval is the VM's: its readings, moved onto the flow's clock
(skew estimated from when each was seen), clamped into the run's window, none of it lost."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carbonshift.energy import Sample
from carbonshift.monitor import MonitorRule
from carbonshift.remote.observer import RemoteMeter
from carbonshift.remote.timeline import EARLY_S, Reading, on_flow_clock, vm_lag_s
from carbonshift.run import Supervisor
from tests.run.fakes import START, FakeClock
from tests.run.test_supervisor import JOB, Run

KWH = 3.6e6


def test_agreeing_clocks_keep_the_vms_times() -> None:
    # Seen 0..5 s after written (the flow polls every 5 s): no skew, nothing moved.
    readings = [Reading(100.0, 103.0, 10.0), Reading(130.0, 130.5, 40.0)]
    assert vm_lag_s(readings, delay_s=10.0) == 0.0
    assert vm_lag_s([Reading(100.0, 100.0 - EARLY_S, 1.0)], delay_s=10.0) == 0.0
    assert on_flow_clock(readings, 90.0, 200.0, delay_s=10.0) == [
        Sample(90.0, 0.0), Sample(100.0, 10.0), Sample(130.0, 40.0), Sample(200.0, 40.0)]


@pytest.mark.parametrize("skew_s", [-3600.0, -30.0, 30.0, 7200.0])
def test_a_skewed_vm_clock_is_moved_by_the_least_gap(skew_s: float) -> None:
    # True times 10, 40, 70; seen 0-4 s later; the VM's clock reads skew_s ahead.
    true = [(10.0, 0.0, 5.0), (40.0, 4.0, 20.0), (70.0, 2.0, 45.0)]
    readings = [Reading(t + skew_s, t + late, e) for t, late, e in true]
    assert vm_lag_s(readings, delay_s=10.0) == -skew_s
    assert on_flow_clock(readings, 0.0, 100.0, delay_s=10.0) == [
        Sample(0.0, 0.0), Sample(10.0, 5.0), Sample(40.0, 20.0), Sample(70.0, 45.0),
        Sample(100.0, 45.0)]


def test_readings_clamped_to_the_window_keep_their_energy() -> None:
    # Every reading is "before" the window's start, then the last "after" its end.
    early = [Reading(-50.0, -49.0, 5.0), Reading(-40.0, -39.0, 9.0)]
    assert on_flow_clock(early, 0.0, 60.0, delay_s=5.0) == [Sample(0.0, 0.0), Sample(60.0, 9.0)]
    late = [Reading(10.0, 10.0, 5.0), Reading(70.0, 70.0, 9.0), Reading(80.0, 80.0, 12.0)]
    assert on_flow_clock(late, 0.0, 60.0, delay_s=5.0) == [
        Sample(0.0, 0.0), Sample(10.0, 5.0), Sample(60.0, 12.0)]
    assert on_flow_clock([], 0.0, 60.0, delay_s=5.0) == [Sample(0.0, 0.0), Sample(60.0, 0.0)]


@st.composite
def vm_readings(draw: st.DrawFn) -> list[Reading]:
    n = draw(st.integers(0, 12))
    times = sorted(draw(st.lists(st.floats(-1e4, 1e4), min_size=n, max_size=n)))
    seen = draw(st.lists(st.floats(-1e4, 1e4), min_size=n, max_size=n))
    energies = draw(st.lists(st.floats(0, 1e9), min_size=n, max_size=n))
    if draw(st.booleans()):  # one agent: never falls; else falls are restarts (a VM rebooted)
        energies.sort()
    return [Reading(t, s, e) for t, s, e in zip(times, seen, energies, strict=True)]


@given(vm_readings(), st.floats(-1e4, 1e4), st.floats(0.001, 1e4), st.floats(0, 60))
def test_samples_stay_in_the_window_and_count_every_joule(
        readings: list[Reading], start_s: float, length_s: float, delay_s: float) -> None:
    end_s = start_s + length_s
    samples = on_flow_clock(readings, start_s, end_s, delay_s)
    assert samples[0] == Sample(start_s, 0.0) and samples[-1].at_s == end_s
    assert all(start_s <= s.at_s <= end_s for s in samples)
    assert all(a.at_s < b.at_s for a, b in zip(samples, samples[1:], strict=False))
    assert all(a.energy_j <= b.energy_j for a, b in zip(samples, samples[1:], strict=False))
    # Every agent's final reading is in the window, whatever the clocks said.
    e = [r.energy_j for r in readings]
    total = sum(a for a, b in zip(e, e[1:], strict=False) if b < a) + (e[-1] if e else 0.0)
    assert samples[-1].energy_j == pytest.approx(total)


def test_an_agent_that_started_again_counts_on_from_what_it_had() -> None:
    readings = [Reading(10.0, 10.0, 50.0), Reading(20.0, 20.0, 80.0),
                Reading(40.0, 40.0, 5.0), Reading(50.0, 50.0, 30.0)]
    assert on_flow_clock(readings, 0.0, 60.0, delay_s=5.0) == [
        Sample(0.0, 0.0), Sample(10.0, 50.0), Sample(20.0, 80.0), Sample(40.0, 85.0),
        Sample(50.0, 110.0), Sample(60.0, 110.0)]


class ArrivingMeter(RemoteMeter):
    """The VM's readings, each known to the flow only once it has been seen (as the observer
    records them while the run goes on)."""

    def __init__(self, clock: FakeClock, readings: list[Reading]) -> None:
        super().__init__(pue=1.0, delay_s=10.0)
        self.clock, self.pending = clock, readings
        self.label = "measured: test (on the instance)"

    def read_j(self) -> float:
        while self.pending and self.pending[0].seen_s <= self.clock.now():
            r = self.pending.pop(0)
            self.record(r.vm_at_s, r.seen_s, r.energy_j, "measured: test")
        return super().read_j()


@pytest.mark.parametrize("skew_s", [0.0, 3600.0, -900.0])
def test_the_accounting_charges_each_interval_the_vms_energy(skew_s: float) -> None:
    # 1 kW for the first 10 minutes, then idle; 100 g/kWh until 10 minutes, 500 g after.
    # Heartbeats every minute (VM time), seen 1 s later (every other one at once); the monitor
    # ticks every 5 minutes, so the beat written at 10:00 arrives after the 10:00 tick.
    run = Run(actual_g=100.0, trains_for_s=1800.0, rule=MonitorRule(grace_s=7200.0))
    run.actuals.later_s, run.actuals.later_g = 600.0, 500.0
    readings = [Reading(START + t + skew_s, START + t + 1 - (t // 60) % 2, 1000.0 * min(t, 600))
                for t in range(60, 1860, 60)]
    meter = ArrivingMeter(run.clock, readings)
    report = Supervisor(run.compute, meter, run.actuals, run.clock, run.rule).run(
        JOB, run.where, "run-1", run.ctx, run.trainer)
    acc = report.accounting
    assert acc.energy_kwh == pytest.approx(600e3 / KWH)
    # All of it in the first ten minutes, at 100 g/kWh; heartbeat arrivals put the last
    # minute's (60 kJ) after the intensity step, at 500 g/kWh.
    assert acc.emissions_kg == pytest.approx(600e3 / KWH * 0.100)
    assert report.samples[0] == Sample(START, 0.0) and report.samples[-1].at_s == START + 1800
    assert report.samples[-1].energy_j == 600e3
