"""The forecast-provider port: one interface, many sources, typed errors at the boundary."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from carbonshift.catalog import Region
from carbonshift.series import IntensitySeries, Signal

if TYPE_CHECKING:
    from carbonshift.providers.secrets import Scrubber


class ProviderError(Exception):
    """A provider could not answer. Messages never carry credentials: every error that leaves a
    provider passes through its chain's scrubber (`carbonshift.providers.secrets`)."""

    def __init__(self, provider: str, message: str) -> None:
        self.provider = provider
        self.detail = message
        super().__init__(f"{provider}: {message}")


class ProviderUnavailable(ProviderError):
    """Timeouts, connection failures, 5xx or 429 that outlasted the retries."""


class ProviderRejected(ProviderError):
    """The provider refused the request (4xx): a bad zone, bad credentials, no access."""


class ProviderBadResponse(ProviderError):
    """The provider answered, but not with a usable series: malformed, missing, empty, wrong."""


class ForecastUnavailable(Exception):
    """Nothing in a provider chain could answer, and the static default was not allowed."""


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
