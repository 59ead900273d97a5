"""A provider chain per zone: providers in order (a fresh cache entry counts as their answer),
then a stale cache entry, then the static default. Every failure it reports (in `Served.failures`,
`ForecastUnavailable`, logs) has passed through the chain's scrubber."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from carbonshift.catalog import Region
from carbonshift.providers.base import ForecastProvider, ForecastUnavailable, ProviderError
from carbonshift.providers.cache import Cached, ForecastCache
from carbonshift.providers.points import clip
from carbonshift.providers.secrets import Scrubber
from carbonshift.series import STATIC_SOURCE, IntensitySeries

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
    """`scrubber`: the chain's one scrubber (the factory shares it with every provider); the
    chain also applies each provider's own, so that no failure it reports quotes a secret."""

    def __init__(
        self,
        providers: Sequence[ForecastProvider],
        *,
        cache: ForecastCache | None = None,
        scrubber: Scrubber | None = None,
    ) -> None:
        if not providers:
            raise ValueError("a provider chain needs at least one provider")
        self.providers = list(providers)
        self.cache = cache
        self.scrubber = scrubber or Scrubber()
        self._scrubbers = [self.scrubber]
        for provider in self.providers:
            if all(provider.scrubber is not s for s in self._scrubbers):
                self._scrubbers.append(provider.scrubber)

    def scrub(self, text: str) -> str:
        for scrubber in self._scrubbers:
            text = scrubber.scrub(text)
        return text

    def forecast(self, target: Region | str, start: datetime, end: datetime) -> Served:
        """A fresh cache entry serves only a request inside the window it answered; a live
        request asks for `ttl_s` more than the window, so that the same request repeated while
        the entry is fresh is covered by it."""
        failures: list[str] = []
        stale: list[tuple[Cached, ForecastProvider, str]] = []
        start_s, end_s = start.timestamp(), end.timestamp()
        for provider in self.providers:
            try:
                zone = provider.zone_for(target) if isinstance(target, Region) else target
                if provider.name == "static":
                    return self._served(
                        provider.forecast(zone, start, end), "static", provider, zone, failures
                    )
            except ProviderError as e:
                failures.append(self._failed(e))
                continue
            cache_id = provider.cache_id if self.cache is not None else None
            cached = None
            if self.cache is not None and cache_id is not None:
                cached = self.cache.latest(
                    provider.name, cache_id, zone, provider.signal, start_s, end_s
                )
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
                    pass  # cannot happen for an entry that covers the window; ask again
            fetch_end = end
            if self.cache is not None and cache_id is not None:
                fetch_end = end + timedelta(seconds=self.cache.ttl_s)
            try:
                series = provider.forecast(zone, start, fetch_end)
                window = clip(provider.name, series, start, end)
            except ProviderError as e:
                failures.append(self._failed(e))
                if cached is not None:
                    stale.append((cached, provider, zone))
                continue
            if self.cache is not None and cache_id is not None:
                answered = (int(start_s), int(fetch_end.timestamp()))
                self.cache.put(provider.name, cache_id, zone, series, answered)
            return self._served(window, "live", provider, zone, failures)
        for cached, provider, zone in sorted(stale, key=lambda s: s[0].age_s):
            try:
                window = clip(provider.name, cached.series, start, end)
            except ProviderError:
                continue
            return self._served(window, "stale-cache", provider, zone, failures)
        name = target.key if isinstance(target, Region) else target
        raise ForecastUnavailable(self.scrub(f"no forecast for {name}: " + "; ".join(failures)))

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
                failures.append(self._failed(e))
                continue
            return self._served(series, "live", provider, zone, failures)
        name = target.key if isinstance(target, Region) else target
        raise ForecastUnavailable(self.scrub(f"no actuals for {name}: " + "; ".join(failures)))

    def _failed(self, error: ProviderError) -> str:
        message = self.scrub(str(error))
        log.warning("%s", message)
        return message

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
