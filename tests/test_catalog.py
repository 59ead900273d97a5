from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from carbonshift.catalog import Catalog, CatalogError


def test_every_region_is_complete(catalog: Catalog) -> None:
    assert len(catalog.regions_of(["aws"])) >= 10
    assert len(catalog.regions_of(["gcp"])) >= 10
    for region in catalog.regions.values():
        ZoneInfo(region.timezone)  # a real IANA zone
        assert region.em_zone and region.watttime_region
        assert 0 < region.annual_mean_g_per_kwh < 1000
        assert catalog.instance_types_in(region), f"no GPU instance in {region.key}"


def test_instance_types_are_consistent(catalog: Catalog) -> None:
    names = {r.name for r in catalog.regions.values()}
    for itype in catalog.instance_types.values():
        assert itype.regions <= names, itype.name
        assert 0 < itype.spot_usd_per_h < itype.on_demand_usd_per_h
        assert itype.power_w == itype.gpu.board_power_w * itype.gpu_count


def test_region_lookup(catalog: Catalog) -> None:
    assert catalog.region("aws:eu-west-2").em_zone == "GB"
    assert catalog.region("europe-west4").provider == "gcp"
    with pytest.raises(CatalogError, match="unknown region 'mars-1'"):
        catalog.region("mars-1")


def test_known_mappings(catalog: Catalog) -> None:
    assert catalog.region("aws:us-east-1").em_zone == "US-MIDA-PJM"
    assert catalog.region("aws:us-west-1").watttime_region == "CAISO_NORTH"
    assert catalog.region("gcp:europe-west3").em_zone == "DE"
    assert catalog.pue == {"aws": 1.15, "gcp": 1.10}


def test_throughput_override(catalog: Catalog) -> None:
    tuned = catalog.with_throughput({"H100": 3.0})
    assert tuned.instance_type("p5.48xlarge").throughput == 24.0
    assert catalog.instance_type("p5.48xlarge").throughput == 16.0
    with pytest.raises(CatalogError, match="unknown GPU model"):
        catalog.with_throughput({"B200": 4.0})
    with pytest.raises(CatalogError, match="> 0"):
        catalog.with_throughput({"H100": 0})


def test_price_override(catalog: Catalog) -> None:
    priced = catalog.with_prices({"g5.xlarge": (2.0, 0.5)})
    assert priced.instance_type("g5.xlarge").on_demand_usd_per_h == 2.0
