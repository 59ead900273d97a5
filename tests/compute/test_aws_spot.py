"""Spot prices: AWS's quotes when fresh, the catalog's otherwise, labelled either way."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from carbonshift.catalog import CATALOG_SOURCE, Catalog, CatalogError, PriceQuote
from carbonshift.clouds.aws_spot import SOURCE, latest_per_type, spot_quotes

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
DAY_S = 86400.0


def record(itype: str, zone: str, usd: float, age_s: float) -> dict[str, Any]:
    return {
        "InstanceType": itype,
        "AvailabilityZone": zone,
        "SpotPrice": f"{usd:.6f}",
        "Timestamp": NOW - timedelta(seconds=age_s),
    }


def test_each_zone_s_newest_price_then_the_highest_zone() -> None:
    records = [
        record("g5.xlarge", "us-east-1a", 0.50, 3600),  # superseded in its zone
        record("g5.xlarge", "us-east-1a", 0.30, 60),
        record("g5.xlarge", "us-east-1b", 0.35, 7200),
        record("g6.xlarge", "us-east-1a", 0.20, 600),
    ]
    quotes = latest_per_type(records, "us-east-1", NOW.timestamp(), DAY_S)
    assert [(q.instance_type, q.usd_per_h) for q in quotes] == [
        ("g5.xlarge", 0.35),
        ("g6.xlarge", 0.20),
    ]
    g5 = quotes[0]
    assert (g5.region, g5.source) == ("aws:us-east-1", SOURCE)
    assert g5.at_s == pytest.approx(NOW.timestamp() - 60)


def test_stale_and_placeholder_prices_are_no_quote() -> None:
    records = [
        record("g5.xlarge", "us-east-1a", 0.30, DAY_S + 1),
        record("g6.xlarge", "us-east-1a", 0.0, 60),
        record("p3.2xlarge", "us-east-1a", 0.9, DAY_S - 1),
    ]
    quotes = latest_per_type(records, "aws:us-east-1", NOW.timestamp(), DAY_S)
    assert [q.instance_type for q in quotes] == ["p3.2xlarge"]


@pytest.mark.integration
def test_the_emulator_s_2006_placeholders_leave_the_catalog_in_place(
    aws: str, session: Any, catalog: Catalog
) -> None:
    quotes = spot_quotes(["g5.xlarge", "p4d.24xlarge"], "aws:us-east-1", now=NOW, session=session)
    assert quotes == []
    price = catalog.with_spot_quotes(quotes).spot_price("g5.xlarge", "aws:us-east-1")
    assert price == PriceQuote("g5.xlarge", "aws:us-east-1", 0.40, CATALOG_SOURCE)


@pytest.mark.integration
def test_fresh_quotes_from_the_api_override_the_catalog(
    aws: str, session: Any, catalog: Catalog
) -> None:
    """moto dates its quotes 2006-01-02: asked 'then', they are fresh."""
    then = datetime(2006, 1, 3, tzinfo=UTC)
    quotes = spot_quotes(["g5.xlarge", "p4d.24xlarge"], "aws:us-east-1", now=then, session=session)
    assert {q.instance_type for q in quotes} == {"g5.xlarge", "p4d.24xlarge"}
    assert all(q.source == SOURCE and q.region == "aws:us-east-1" for q in quotes)
    assert all(q.at_s is not None and q.at_s <= then.timestamp() for q in quotes)

    priced = catalog.with_spot_quotes(quotes)
    g5 = priced.spot_price("g5.xlarge", "aws:us-east-1")
    assert (g5.source, g5.usd_per_h) == (SOURCE, float(quotes[0].usd_per_h))
    # other regions and the on-demand price keep the catalog's
    assert priced.spot_price("g5.xlarge", "aws:eu-west-1").source == CATALOG_SOURCE
    assert priced.instance_type("g5.xlarge").on_demand_usd_per_h == 1.006


@pytest.mark.integration
def test_no_credentials_mean_no_quotes_not_a_failed_plan(
    aws: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with caplog.at_level(logging.WARNING, "carbonshift.clouds"):
        assert spot_quotes(["g5.xlarge"], "aws:us-east-1", now=NOW) == []
    assert "no spot prices from AWS in aws:us-east-1" in caplog.text
    assert "NoCredentialsError" in caplog.text


def test_no_types_ask_nothing() -> None:
    assert spot_quotes([], "aws:us-east-1", now=NOW) == []


def test_the_newest_quote_wins_and_names_are_normalised(catalog: Catalog) -> None:
    old = PriceQuote("g5.xlarge", "us-east-1", 0.31, SOURCE, 1000.0)
    new = PriceQuote("g5.xlarge", "aws:us-east-1", 0.29, SOURCE, 2000.0)
    for order in ([old, new], [new, old]):
        price = catalog.with_spot_quotes(order).spot_price("g5.xlarge", "us-east-1")
        assert price == new
    stacked = catalog.with_spot_quotes([old]).with_spot_quotes([new])
    assert stacked.spot_price("g5.xlarge", "aws:us-east-1") == new


@pytest.mark.parametrize(
    ("quote", "named"),
    [
        (PriceQuote("x9.huge", "aws:us-east-1", 1.0, SOURCE), "x9.huge"),
        (PriceQuote("g5.xlarge", "aws:mars-1", 1.0, SOURCE), "aws:mars-1"),
        (PriceQuote("g5.xlarge", "aws:us-east-1", 0.0, SOURCE), "must be > 0"),
        (PriceQuote("g5.xlarge", "aws:us-east-1", float("nan"), SOURCE), "must be > 0"),
    ],
)
def test_bad_quotes_are_named(catalog: Catalog, quote: PriceQuote, named: str) -> None:
    with pytest.raises(CatalogError, match=named):
        catalog.with_spot_quotes([quote])
