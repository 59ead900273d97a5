"""The grid as a run sees it: the forecast its plan was made on, and the actual intensity since."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import numpy as np

from carbonshift.catalog import Region
from carbonshift.plan import PlannedSeries
from carbonshift.providers import ForecastUnavailable
from carbonshift.providers.chain import ProviderChain
from carbonshift.series import IntensitySeries, Signal

log = logging.getLogger("carbonshift.run")


class ActualIntensity(Protocol):
    def actuals(self, start_s: float, end_s: float) -> IntensitySeries | None:
        """Measured intensity of the run's region over [start_s, end_s), or None if unknown."""
        ...


def planned_series(forecast: PlannedSeries | None) -> IntensitySeries | None:
    if forecast is None:
        return None
    values = np.asarray(forecast.g_per_kwh, dtype=np.float64)
    return IntensitySeries(
        int(forecast.start.timestamp()),
        forecast.step_s,
        values,
        Signal(forecast.signal),
        forecast.source,
    )


@dataclass(frozen=True)
class ChainActuals:
    """Actual intensity from a provider chain; a provider that has none is a missing actual
    (the run carries on), not an error."""

    chain: ProviderChain
    region: Region

    def actuals(self, start_s: float, end_s: float) -> IntensitySeries | None:
        start, end = datetime.fromtimestamp(start_s, UTC), datetime.fromtimestamp(end_s, UTC)
        try:
            return self.chain.actuals(self.region, start, end).series
        except ForecastUnavailable as e:
            log.info("no actual intensity for %s: %s", self.region.key, e)
            return None
