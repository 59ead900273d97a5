"""The region and hardware catalog, shipped as CSV files with their sources (data/SOURCES.md)."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cache, cached_property
from importlib import resources
from typing import Literal
from zoneinfo import ZoneInfo

Provider = Literal["aws", "gcp"]
PROVIDERS: tuple[Provider, ...] = ("aws", "gcp")


class CatalogError(ValueError):
    pass


@dataclass(frozen=True)
class Region:
    provider: Provider
    name: str
    location: str
    em_zone: str
    watttime_region: str
    timezone: str
    annual_mean_g_per_kwh: float

    @cached_property
    def key(self) -> str:
        """`aws:us-east-1`, the form jobs and the CLI use."""
        return f"{self.provider}:{self.name}"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class Gpu:
    model: str
    board_power_w: float
    throughput_factor: float  # training throughput relative to one A100


@dataclass(frozen=True)
class InstanceType:
    provider: Provider
    name: str
    gpu: Gpu
    gpu_count: int
    on_demand_usd_per_h: float
    spot_usd_per_h: float
    regions: frozenset[str]  # region names; empty means every region of the provider

    @property
    def power_w(self) -> float:
        return self.gpu.board_power_w * self.gpu_count

    @property
    def throughput(self) -> float:
        """Work per hour in reference-GPU-hours (A100 = 1)."""
        return self.gpu.throughput_factor * self.gpu_count

    def offered_in(self, region: Region) -> bool:
        return region.provider == self.provider and (
            not self.regions or region.name in self.regions
        )


CATALOG_SOURCE = "catalog"


@dataclass(frozen=True)
class PriceQuote:
    """A spot price for one instance type in one region, labelled with where it came from
    (`catalog`, or the provider's API such as `aws:describe_spot_price_history`)."""

    instance_type: str
    region: str  # `provider:name`
    usd_per_h: float
    source: str
    at_s: float | None = None  # when the provider set this price; None for the catalog


@dataclass(frozen=True)
class Catalog:
    regions: Mapping[str, Region]  # keyed by `provider:name`
    instance_types: Mapping[str, InstanceType]  # keyed by instance type name
    gpus: Mapping[str, Gpu]
    pue: Mapping[str, float]
    # Provider quotes that override the catalog's spot price, keyed by (instance type, region).
    spot_quotes: Mapping[tuple[str, str], PriceQuote] = field(default_factory=dict)

    def region(self, key: str) -> Region:
        """Look up `aws:us-east-1`; a bare `us-east-1` works when only one provider has it."""
        if key in self.regions:
            return self.regions[key]
        matches = [r for r in self.regions.values() if r.name == key]
        if len(matches) == 1:
            return matches[0]
        known = ", ".join(sorted(self.regions))
        raise CatalogError(f"unknown region {key!r}: use provider:region, one of {known}")

    def instance_type(self, name: str) -> InstanceType:
        try:
            return self.instance_types[name]
        except KeyError:
            known = ", ".join(sorted(self.instance_types))
            raise CatalogError(f"unknown instance type {name!r}: one of {known}") from None

    def gpu(self, model: str) -> Gpu:
        try:
            return self.gpus[model]
        except KeyError:
            known = ", ".join(sorted(self.gpus))
            raise CatalogError(f"unknown GPU model {model!r}: one of {known}") from None

    def regions_of(self, providers: Iterable[str]) -> list[Region]:
        wanted = set(providers)
        return [r for r in self.regions.values() if r.provider in wanted]

    def instance_types_in(self, region: Region) -> list[InstanceType]:
        return [t for t in self.instance_types.values() if t.offered_in(region)]

    def with_throughput(self, factors: Mapping[str, float]) -> Catalog:
        """A catalog with measured throughput factors for some GPU models."""
        gpus = dict(self.gpus)
        for model, factor in factors.items():
            if factor <= 0:
                raise CatalogError(f"throughput factor for {model} must be > 0, got {factor}")
            gpus[model] = replace(self.gpu(model), throughput_factor=factor)
        types = {k: replace(t, gpu=gpus[t.gpu.model]) for k, t in self.instance_types.items()}
        return replace(self, gpus=gpus, instance_types=types)

    def with_prices(self, prices: Mapping[str, tuple[float, float]]) -> Catalog:
        """A catalog with your own (on-demand, spot) $/h per instance type."""
        types = dict(self.instance_types)
        for name, (on_demand, spot) in prices.items():
            types[name] = replace(
                self.instance_type(name), on_demand_usd_per_h=on_demand, spot_usd_per_h=spot
            )
        return replace(self, instance_types=types)

    def with_spot_quotes(self, quotes: Iterable[PriceQuote]) -> Catalog:
        """A catalog whose spot prices come from these quotes where there is one (the newest
        quote wins for a pair); other pairs keep the catalog's price."""
        merged = dict(self.spot_quotes)
        for quote in quotes:
            self.instance_type(quote.instance_type)
            key = (quote.instance_type, self.region(quote.region).key)
            if not quote.usd_per_h > 0:
                raise CatalogError(
                    f"spot quote for {key[0]} in {key[1]} from {quote.source} must be > 0 $/h, "
                    f"got {quote.usd_per_h}"
                )
            known = merged.get(key)
            if known is None or (known.at_s or 0.0) <= (quote.at_s or 0.0):
                merged[key] = replace(quote, region=key[1])
        return replace(self, spot_quotes=merged)

    def spot_price(self, instance_type: str, region: str) -> PriceQuote:
        """The spot $/h of a type in a region: a provider quote if one was applied, else the
        catalog's, labelled either way."""
        key = (instance_type, self.region(region).key)
        quote = self.spot_quotes.get(key)
        if quote is not None:
            return quote
        price = self.instance_type(instance_type).spot_usd_per_h
        return PriceQuote(instance_type, key[1], price, CATALOG_SOURCE)


@cache
def default_catalog() -> Catalog:
    """The catalog from the package's data files."""
    gpus = {
        row["gpu_model"]: Gpu(
            row["gpu_model"], float(row["board_power_w"]), float(row["throughput_factor"])
        )
        for row in _rows("gpus.csv")
    }
    regions = {}
    for row in _rows("regions.csv"):
        region = Region(
            provider=_provider(row["provider"]),
            name=row["region"],
            location=row["location"],
            em_zone=row["em_zone"],
            watttime_region=row["watttime_region"],
            timezone=row["timezone"],
            annual_mean_g_per_kwh=float(row["annual_mean_g_per_kwh"]),
        )
        regions[region.key] = region
    types = {}
    for row in _rows("instances.csv"):
        names = row["regions"].strip()
        types[row["instance_type"]] = InstanceType(
            provider=_provider(row["provider"]),
            name=row["instance_type"],
            gpu=gpus[row["gpu_model"]],
            gpu_count=int(row["gpu_count"]),
            on_demand_usd_per_h=float(row["on_demand_usd_per_h"]),
            spot_usd_per_h=float(row["spot_usd_per_h"]),
            regions=frozenset() if names == "*" else frozenset(names.split(";")),
        )
    pue = {row["provider"]: float(row["pue"]) for row in _rows("pue.csv")}
    return Catalog(regions=regions, instance_types=types, gpus=gpus, pue=pue)


def _provider(text: str) -> Provider:
    if text == "aws":
        return "aws"
    if text == "gcp":
        return "gcp"
    raise CatalogError(f"unknown provider {text!r}: aws or gcp")


def _rows(name: str) -> list[dict[str, str]]:
    text = (resources.files("carbonshift") / "data" / name).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))
