"""Energy meters behind one port, and emissions accounting over the run's intervals.

NVML for the visible GPUs (carbonshift.meters.nvml) or RAPL (`/sys/class/powercap/intel-rapl*`)
when asked for and available, otherwise a labelled estimate from the catalog's board power.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from carbonshift import scoring
from carbonshift.meters.nvml import MeterUnavailable, NvmlLike, NvmlMeter
from carbonshift.series import IntensitySeries, SeriesError

log = logging.getLogger("carbonshift.energy")

J_PER_KWH = 3.6e6
RAPL_ROOT = Path("/sys/class/powercap")


class EnergyMeter(Protocol):
    label: str

    def read_j(self) -> float:
        """Energy in joules since the meter was opened."""
        ...


class EstimateMeter:
    """Board power x utilisation x PUE x elapsed time: an estimate, and labelled as one.
    `pue` is the PUE already in `power_w` (None: not known here), which the run's records
    then state: it is never applied a second time."""

    def __init__(
        self, power_w: float, clock: Callable[[], float], label: str, pue: float | None = None
    ) -> None:
        self.power_w = power_w
        self.pue = pue
        self._clock = clock
        self._t0 = clock()
        self.label = f"estimate: {label}"

    def read_j(self) -> float:
        return self.power_w * (self._clock() - self._t0)


class RaplMeter:
    """Sum of the CPU packages' RAPL counters (µJ), minding each counter's wrap-around, times
    the facility's PUE (once, as the NVML meter does: the ledger records the same `pue`)."""

    def __init__(self, root: Path = RAPL_ROOT, pue: float = 1.0) -> None:
        if pue < 1.0:
            raise ValueError(f"pue: {pue!r} is below 1, which no data centre reaches: give >= 1")
        self.pue = pue
        self.label = "measured: RAPL (CPU packages)" + (f" x PUE {pue:.2f}" if pue != 1.0 else "")
        self._zones = sorted(
            p for p in root.glob("intel-rapl:*") if ":" in p.name and p.name.count(":") == 1
        )
        if not self._zones:
            raise OSError("no RAPL packages")
        self._last = [self._read(z) for z in self._zones]
        self._ranges = [float((z / "max_energy_range_uj").read_text()) for z in self._zones]
        self._total_uj = 0.0

    @staticmethod
    def _read(zone: Path) -> float:
        return float((zone / "energy_uj").read_text())

    def read_j(self) -> float:
        for i, zone in enumerate(self._zones):
            now = self._read(zone)
            delta = now - self._last[i]
            if delta < 0:  # the counter wrapped
                delta += self._ranges[i]
            self._total_uj += delta
            self._last[i] = now
        return self._total_uj / 1e6 * self.pue


def open_meter(
    estimate_power_w: float,
    clock: Callable[[], float],
    estimate_label: str,
    rapl_root: Path = RAPL_ROOT,
    prefer_rapl: bool = False,
    prefer_nvml: bool = False,
    pue: float = 1.0,
    nvml: NvmlLike | None = None,
    environ: Mapping[str, str] | None = None,
) -> EnergyMeter:
    """The best meter asked for that works here: NVML (the visible GPUs) when `prefer_nvml`,
    then RAPL (a CPU job on this machine) when `prefer_rapl`, else the estimate.

    `pue` scales measured energy (GPUs, CPU packages) to the facility's; `estimate_power_w` must
    have that same PUE in it already (the caller's job), so the estimate is not scaled again and
    every meter states the one `pue` its energy includes."""
    unavailable = ""
    if prefer_nvml:
        try:
            return NvmlMeter(clock, pue=pue, nvml=nvml, environ=environ)
        except MeterUnavailable as e:
            log.info("no NVML meter: %s", e)
            unavailable = f" (NVML unavailable: {e})"
    if prefer_rapl:
        try:
            return RaplMeter(rapl_root, pue=pue)
        except (OSError, ValueError):
            pass
    return EstimateMeter(estimate_power_w, clock, estimate_label + unavailable, pue=pue)


@dataclass(frozen=True)
class Sample:
    at_s: float
    energy_j: float


@dataclass(frozen=True)
class Accounting:
    """A run's integrated emissions. `signal` is the intensity's kind (lca, direct or moer: a
    moer figure is marginal, never a location-based one); `estimated` lists, merged, the spans
    whose intervals had no actual intensity and what stood in (forecast or fallback).

    The interval counts are the one definition the ledger record, the run's table and the
    report state (they copy these): `intervals` are the metered intervals that drew energy, each
    charged one intensity (an idle one is charged none, so it is in no count); of them,
    `intervals_on_forecast` were charged the forecast and `intervals_on_fallback` the fallback
    (no actual intensity, nor a forecast); the rest were on actuals."""

    energy_kwh: float
    emissions_kg: float
    counterfactual_kg: float
    intensity_source: str
    intervals: int
    signal: str = ""
    intervals_on_forecast: int = 0
    estimated: tuple[tuple[float, float, str], ...] = ()
    intervals_on_fallback: int = 0

    @property
    def savings_kg(self) -> float:
        return self.counterfactual_kg - self.emissions_kg


def account(
    samples: Sequence[Sample],
    actual: IntensitySeries | None,
    planned: IntensitySeries | None,
    counterfactual: IntensitySeries | None,
    shift_s: float,
    fallback_g_per_kwh: float,
) -> Accounting:
    """Emissions: each interval's energy times the actual intensity over that interval (the
    forecast, then the fallback, where actuals are missing). Counterfactual: the same energy
    profile `shift_s` earlier (had the job started at once), on the `counterfactual` series."""
    if actual is not None and planned is not None and planned.signal != actual.signal:
        # Never one sum over two signals: the fallback stands in where actuals are missing.
        log.warning("the forecast is %s, the actuals %s: not used", planned.signal, actual.signal)
        planned = None
    energy = emissions = would_be = 0.0
    used: set[str] = set()
    signals: set[str] = set()
    estimated: list[tuple[float, float, str]] = []
    charged: list[str] = []  # the source of each interval that drew energy
    for a, b in zip(samples, samples[1:], strict=False):
        kwh = max(b.energy_j - a.energy_j, 0.0) / J_PER_KWH
        if kwh == 0 or b.at_s <= a.at_s:
            continue
        g, source = _intensity(
            a.at_s, b.at_s, (actual, "actual"), (planned, "forecast"), fallback_g_per_kwh
        )
        used.add(source)
        charged.append(source)
        series = actual if source == "actual" else planned if source == "forecast" else None
        if series is not None:
            signals.add(series.signal.value)
        if source != "actual":
            if estimated and estimated[-1][1] == a.at_s and estimated[-1][2] == source:
                estimated[-1] = (estimated[-1][0], b.at_s, source)
            else:
                estimated.append((a.at_s, b.at_s, source))
        g_then, _ = _intensity(
            a.at_s - shift_s,
            b.at_s - shift_s,
            (counterfactual, "actual"),
            (None, ""),
            fallback_g_per_kwh,
        )
        energy += kwh
        emissions += float(scoring.emissions_kg(kwh, g))
        would_be += float(scoring.emissions_kg(kwh, g_then))
    return Accounting(
        energy,
        emissions,
        would_be,
        "+".join(sorted(used)) or "none",
        len(charged),
        signal=next(iter(signals), ""),
        intervals_on_forecast=charged.count("forecast"),
        estimated=tuple(estimated),
        intervals_on_fallback=charged.count("fallback"),
    )


def _intensity(
    start_s: float,
    end_s: float,
    first: tuple[IntensitySeries | None, str],
    second: tuple[IntensitySeries | None, str],
    fallback: float,
) -> tuple[float, str]:
    for series, name in (first, second):
        if series is not None:
            try:
                return series.mean_over(start_s, end_s), name
            except SeriesError:
                continue
    return fallback, "fallback"
