"""A provider chain per zone: providers in order (a fresh cache entry counts as their answer),
then a stale cache entry, then the static default."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from carbonshift.catalog import Region
from carbonshift.planner.static import STATIC_SOURCE
from carbonshift.providers.base import ForecastProvider, ForecastUnavailable, ProviderError
from carbonshift.providers.cache import Cached, ForecastCache
from carbonshift.providers.points import clip
from carbonshift.series import IntensitySeries

log = logging.getLogger("carbonshift.providers")

Source = Literal["live", "cache", "stale-cache", "static"]


@dataclass(frozen=True)
class Served:
    """A series and where it came from; `series.source` says the same, e.g. `cache:watttime`."""

    series: IntensitySeries
    source: Source
    provider: str
    zone: str
    failures: tuple[str, ...] = ()


class ProviderChain:
    def __init__(
        self, providers: Sequence[ForecastProvider], *, cache: ForecastCache | None = None
    ) -> None:
        if not providers:
            raise ValueError("a provider chain needs at least one provider")
        self.providers = list(providers)
        self.cache = cache

    def forecast(self, target: Region | str, start: datetime, end: datetime) -> Served:
        failures: list[str] = []
        stale: list[tuple[Cached, ForecastProvider, str]] = []
        for provider in self.providers:
            try:
                zone = provider.zone_for(target) if isinstance(target, Region) else target
            except ProviderError as e:
                failures.append(str(e))
                continue
            if provider.name == "static":
                return self._served(
                    provider.forecast(zone, start, end), "static", provider, zone, failures
                )
            cached = self._cached(provider, zone)
            if cached is not None and self.cache is not None and self.cache.is_fresh(cached):
                try:
                    return self._served(
                        clip(provider.name, cached.series, start, end),
                        "cache",
                        provider,
                        zone,
                        failures,
                    )
                except ProviderError:
                    pass  # the cached forecast ended before this window: ask again
            try:
                series = provider.forecast(zone, start, end)
            except ProviderError as e:
                log.warning("%s", e)
                failures.append(str(e))
                if cached is not None:
                    stale.append((cached, provider, zone))
                continue
            if self.cache is not None:
                self.cache.put(provider.name, zone, series)
            return self._served(series, "live", provider, zone, failures)
        for cached, provider, zone in sorted(stale, key=lambda s: s[0].age_s):
            try:
                window = clip(provider.name, cached.series, start, end)
            except ProviderError:
                continue
            return self._served(window, "stale-cache", provider, zone, failures)
        name = target.key if isinstance(target, Region) else target
        raise ForecastUnavailable(f"no forecast for {name}: " + "; ".join(failures))

    def actuals(self, target: Region | str, start: datetime, end: datetime) -> Served:
        """Measured intensity over a past period from the first provider that has it (no cache,
        no static default: a missing actual is reported as missing, never invented)."""
        failures: list[str] = []
        for provider in self.providers:
            if provider.name == "static":
                continue
            try:
                zone = provider.zone_for(target) if isinstance(target, Region) else target
                series = provider.actuals(zone, start, end)
            except ProviderError as e:
                failures.append(str(e))
                continue
            return self._served(series, "live", provider, zone, failures)
        name = target.key if isinstance(target, Region) else target
        raise ForecastUnavailable(f"no actuals for {name}: " + "; ".join(failures))

    def _cached(self, provider: ForecastProvider, zone: str) -> Cached | None:
        if self.cache is None:
            return None
        return self.cache.latest(provider.name, zone, provider.signal)

    @staticmethod
    def _served(
        series: IntensitySeries,
        source: Source,
        provider: ForecastProvider,
        zone: str,
        failures: list[str],
    ) -> Served:
        if source == "static":
            label = STATIC_SOURCE
        elif provider.name == "replay":
            label = series.source  # already says replay:<file>, and "as of now" when shifted
        else:
            label = f"{source}:{provider.name}"
        return Served(replace(series, source=label), source, provider.name, zone, tuple(failures))


def zone_groups(regions: Sequence[Region]) -> dict[str, list[Region]]:
    """Regions that every provider maps to the same zone, keyed by the first of them, so a
    planning run fetches each zone once (two AWS and GCP regions in Frankfurt, say)."""
    groups: dict[tuple[str, str], list[Region]] = {}
    for region in regions:
        groups.setdefault((region.em_zone, region.watttime_region), []).append(region)
    return {members[0].key: members for members in groups.values()}
