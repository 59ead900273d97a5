"""Forecast providers behind one port, with retries, a disk cache and a fallback chain."""

from carbonshift.providers.base import (
    ForecastProvider,
    ForecastUnavailable,
    ProviderBadResponse,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
)
from carbonshift.providers.cache import ForecastCache
from carbonshift.providers.chain import ProviderChain, Served
from carbonshift.providers.credentials import Credentials
from carbonshift.providers.factory import (
    NAMES,
    ForecastConfig,
    ProviderSettings,
    build_chain,
    build_provider,
)

__all__ = [
    "NAMES",
    "Credentials",
    "ForecastCache",
    "ForecastConfig",
    "ForecastProvider",
    "ForecastUnavailable",
    "ProviderBadResponse",
    "ProviderChain",
    "ProviderError",
    "ProviderRejected",
    "ProviderSettings",
    "ProviderUnavailable",
    "Served",
    "build_chain",
    "build_provider",
]
