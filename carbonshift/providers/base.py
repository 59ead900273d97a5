"""The forecast-provider port: one interface, many sources, typed errors at the boundary."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from carbonshift.catalog import Region
from carbonshift.providers.errors import (
    ForecastUnavailable,
    ProviderBadResponse,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
)
from carbonshift.series import IntensitySeries, Signal

if TYPE_CHECKING:
    from carbonshift.providers.secrets import Scrubber

__all__ = [
    "ForecastProvider",
    "ForecastUnavailable",
    "ProviderBadResponse",
    "ProviderError",
    "ProviderRejected",
    "ProviderUnavailable",
]


@runtime_checkable
class ForecastProvider(Protocol):
    """Forecasts and actuals for one zone, on the provider's own signal."""

    name: str
    signal: Signal

    @property
    def scrubber(self) -> Scrubber:
        """Knows the provider's credentials (and tokens it logs in for); shared in a chain."""
        ...

    @property
    def cache_id(self) -> str | None:
        """What besides zone and signal tells this provider's answers apart (name, address,
        units) for the disk cache; None: never cached (local data: replay, static)."""
        ...

    def zone_for(self, region: Region) -> str:
        """The provider's zone id for a cloud region; ProviderRejected if it has none."""
        ...

    def forecast(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        """The latest forecast covering as much of `[start, end)` as the provider has."""
        ...

    def actuals(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        """Measured (or best-estimate) intensity over a past period."""
        ...
