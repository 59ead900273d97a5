"""A remote run's energy readings, moved from the VM's clock onto the flow's.

The VM stamps each heartbeat with its own clock; the flow accounts on its clock (the window from
the instance's launch to its release). The two may disagree. Each reading was seen by the flow
after the VM wrote it, so `seen_s - vm_at_s` is the VM's lag plus the polling delay; its least
value over the run is the best estimate of the lag. Within [-EARLY_S, delay_s] (the flow reading
its clock a moment before the write landed; the polling delay), the clocks agree and the VM's
times are kept, exact; outside, every VM time is moved by that least value.

Then each time is clamped into the window, so no skew the estimate missed can move energy out of
it: a reading clamped to the window's start is counted in the window's first interval, one
clamped to its end in the last; energy is never dropped, only its timing is bounded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from carbonshift.energy import Sample

EARLY_S = 1.0  # a reading seen up to this long "before" it was written: the same clock


@dataclass(frozen=True)
class Reading:
    vm_at_s: float  # when the VM read its meter, on its clock
    seen_s: float  # when the flow first read it, on its clock
    energy_j: float  # the VM's energy since its agent started


def vm_lag_s(readings: Sequence[Reading], delay_s: float) -> float:
    """What to add to a VM time to place it on the flow's clock (0: the clocks agree)."""
    if not readings:
        return 0.0
    lag = min(r.seen_s - r.vm_at_s for r in readings)
    return 0.0 if -EARLY_S <= lag <= delay_s else lag


def on_flow_clock(
    readings: Sequence[Reading], start_s: float, end_s: float, delay_s: float
) -> list[Sample]:
    """The readings as samples of the window [start_s, end_s] on the flow's clock: first
    (start_s, 0) (the agent's meter counts from 0 and starts after the launch), last (end_s, the
    final reading's energy), strictly increasing times and never-falling energy in between. The
    final reading's energy is always the last sample's, so the accounting counts all of it (a
    window of no length has no interval to hold it)."""
    lag = vm_lag_s(readings, delay_s)
    samples = [Sample(start_s, 0.0)]
    latest = restarted_j = previous_j = 0.0
    for r in readings:
        # An agent's energy never falls (a failed read repeats the last): one that does is an
        # agent started again (the VM booted again), counting from 0 on top of what it had.
        if r.energy_j < previous_j:
            restarted_j += previous_j
        previous_j = r.energy_j
        latest = restarted_j + r.energy_j
        at = min(max(r.vm_at_s + lag, start_s), end_s)
        if at > samples[-1].at_s:
            samples.append(Sample(at, latest))
        elif len(samples) > 1:  # the same instant as the last sample: its newer reading
            samples[-1] = Sample(samples[-1].at_s, latest)
        # At the window's start, (start_s, 0) stays: the energy goes into the first interval.
    if end_s > samples[-1].at_s:
        samples.append(Sample(end_s, latest))
    elif len(samples) > 1:
        samples[-1] = Sample(samples[-1].at_s, latest)
    return samples
