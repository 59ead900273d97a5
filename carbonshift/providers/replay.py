"""Recorded traces served as forecasts and actuals, as recorded or shifted onto the present."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from carbonshift.catalog import Region
from carbonshift.providers.base import ProviderRejected
from carbonshift.providers.points import clip
from carbonshift.providers.secrets import Scrubber, scrubbed
from carbonshift.series import IntensitySeries, Signal, common_signal
from carbonshift.traces import bundled_traces_dir, read_traces, traces_in
from carbonshift.units import to_epoch_s


class Replay:
    """With `as_of_now`, each trace is shifted (by whole steps) so that the same day of the year
    and time of day in the trace's first year lands on the present; every series it serves says
    so in its source. Forecasts are the recorded values themselves (perfect foresight)."""

    name = "replay"
    cache_id: str | None = None  # local files: never disk-cached

    def __init__(
        self,
        traces: Mapping[str, IntensitySeries],
        *,
        as_of_now: bool = False,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        scrubber: Scrubber | None = None,
    ) -> None:
        self.scrubber = scrubber or Scrubber()
        if not traces:
            raise ValueError("replay needs at least one trace")
        signal = common_signal(list(traces.values()))
        assert signal is not None
        self.signal: Signal = signal
        self._traces = dict(traces)
        self._as_of_now = as_of_now
        self._clock = clock

    @classmethod
    def from_dir(
        cls,
        directory: Path | None = None,
        *,
        signal: Signal = Signal.LCA,
        as_of_now: bool = False,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        scrubber: Scrubber | None = None,
    ) -> Replay:
        traces = read_traces(traces_in(directory or bundled_traces_dir()), signal=signal)
        return cls(traces, as_of_now=as_of_now, clock=clock, scrubber=scrubber)

    def zone_for(self, region: Region) -> str:
        return region.em_zone

    @scrubbed
    def forecast(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        return clip(self.name, self.served(zone), start, end)

    @scrubbed
    def actuals(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        return clip(self.name, self.served(zone), start, end)

    def served(self, zone: str) -> IntensitySeries:
        try:
            trace = self._traces[zone]
        except KeyError:
            have = ", ".join(sorted(self._traces))
            raise ProviderRejected(self.name, f"no trace for zone {zone!r} (have {have})") from None
        if not self._as_of_now:
            return trace
        now = self._clock()
        anchor = _same_moment_in(now, trace.start.year)
        step = trace.step_s
        offset = (to_epoch_s(now) // step - to_epoch_s(anchor) // step) * step
        return trace.shifted(
            offset, source=f"{trace.source} as of now (recorded from {anchor:%Y-%m-%dT%H:%MZ})"
        )


def _same_moment_in(now: datetime, year: int) -> datetime:
    moment = now.astimezone(UTC)
    if moment.month == 2 and moment.day == 29:
        moment = moment.replace(day=28)
    return moment.replace(year=year)
