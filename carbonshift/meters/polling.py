"""Power read at intervals and integrated over time, for GPUs without an energy counter.

The trapezoid rule: exact when power is linear between samples, and a sampled power curve is
all there is to know. One background thread samples every source; a read samples once more so
the figure is current. Time comes from an injected clock and the thread waits through an
injected `wait(seconds) -> stop?`, so tests drive it without sleeping.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

log = logging.getLogger("carbonshift.meters")

Wait = Callable[[float], bool]


class Integrator:
    """Energy (J) under a power curve (W) known at sample times (s)."""

    def __init__(self) -> None:
        self.energy_j = 0.0
        self._last: tuple[float, float] | None = None

    def add(self, at_s: float, power_w: float) -> None:
        if self._last is not None:
            t0, p0 = self._last
            if at_s <= t0:  # a clock that stood still or stepped back: nothing elapsed
                return
            self.energy_j += (p0 + power_w) / 2.0 * (at_s - t0)
        self._last = (at_s, power_w)


class PowerPoller:
    """Integrates each source's power (W) from the first sample, taken at construction."""

    def __init__(
        self,
        sources: Sequence[Callable[[], float]],
        clock: Callable[[], float],
        interval_s: float,
        wait: Wait | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s: {interval_s!r} must be > 0 (e.g. 0.5)")
        self._sources = list(sources)
        self._clock = clock
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait
        self._lock = threading.Lock()
        self.integrators = [Integrator() for _ in self._sources]
        self.failed_samples = 0
        self.sample()
        self._thread = threading.Thread(target=self._loop, name="power-poller", daemon=True)
        self._thread.start()

    def sample(self) -> None:
        """Read every source now; raise the first failure after recording the others."""
        first: Exception | None = None
        with self._lock:
            at_s = self._clock()
            for source, integrator in zip(self._sources, self.integrators, strict=True):
                try:
                    integrator.add(at_s, source())
                except Exception as e:  # noqa: BLE001 - re-raised below, after the other sources
                    self.failed_samples += 1
                    first = first or e
        if first is not None:
            raise first

    def energies_j(self) -> list[float]:
        self.sample()
        with self._lock:
            return [i.energy_j for i in self.integrators]

    def close(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def _loop(self) -> None:
        while not self._wait(self._interval_s) and not self._stop.is_set():
            try:
                self.sample()
            except Exception as e:  # noqa: BLE001 - a missed sample is bridged by the next one
                log.debug("power sample failed: %s", e)
