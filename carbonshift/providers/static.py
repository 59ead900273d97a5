"""The static default as a provider: a flat series at the zone's annual mean, labelled `static`.

The planner never window-searches a static series: it starts the job at 02:00 local time of the
region (`carbonshift.planner.static`), using this mean as the estimate.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

from carbonshift.catalog import Catalog, Region
from carbonshift.providers.base import ProviderRejected
from carbonshift.providers.secrets import Scrubber
from carbonshift.series import STATIC_SOURCE, IntensitySeries, Signal
from carbonshift.units import to_epoch_s

STEP_S = 3600


class Static:
    name = "static"
    signal = Signal.LCA  # the catalog's annual means are lifecycle intensities
    cache_id: str | None = None  # the catalog: never disk-cached

    def __init__(self, catalog: Catalog, *, scrubber: Scrubber | None = None) -> None:
        self.scrubber = scrubber or Scrubber()
        self._means = {r.em_zone: r.annual_mean_g_per_kwh for r in catalog.regions.values()}

    def zone_for(self, region: Region) -> str:
        return region.em_zone

    def forecast(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        if zone not in self._means:
            raise ProviderRejected(self.name, f"no annual mean for zone {zone!r} in the catalog")
        first = to_epoch_s(start) // STEP_S * STEP_S
        n = max(1, -((first - to_epoch_s(end)) // STEP_S))
        values = np.full(n, self._means[zone])
        return IntensitySeries(first, STEP_S, values, self.signal, STATIC_SOURCE, zone)

    def actuals(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        return self.forecast(zone, start, end)
