"""Live spot prices against the emulator, through boto3: the plan uses the quote AWS answers
and says so; when AWS is out of reach, refuses, or has no fresh price, the catalog's stays,
labelled, and the reason names what is missing."""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from carbonshift.artifacts import plan_markdown
from carbonshift.catalog import Catalog
from carbonshift.planner import plan_jobs
from carbonshift.spot_pricing import PERMISSION, fetch_spot_quotes, spot_candidates
from tests.helpers import T0, job
from tests.test_spot_pricing import REGION, feasible, spot_job

pytestmark = pytest.mark.integration


def moto_quote(itype: str) -> tuple[float, datetime]:
    """What the emulator answers for `itype` in us-east-1, read back through boto3 as a test
    of our own: each zone's newest price, then the dearest zone's (the region's quote)."""
    ec2 = boto3.client("ec2", region_name="us-east-1")
    records = ec2.describe_spot_price_history(
        InstanceTypes=[itype], ProductDescriptions=["Linux/UNIX"]
    )["SpotPriceHistory"]
    newest: dict[str, dict[str, Any]] = {}
    for r in records:
        zone = r["AvailabilityZone"]
        if zone not in newest or newest[zone]["Timestamp"] < r["Timestamp"]:
            newest[zone] = r
    assert newest, "the emulator answers no spot price history"
    price = max(float(r["SpotPrice"]) for r in newest.values())
    at = max(r["Timestamp"] for r in newest.values()).astimezone(UTC)
    return price, at


def test_the_plan_uses_the_quote_aws_answers_and_labels_it(aws: str, catalog: Catalog) -> None:
    price, at = moto_quote("g5.xlarge")
    now = at + timedelta(minutes=10)  # the emulator's prices are dated 2006: plan "then"
    jobs = [spot_job(regions=[REGION]), job("od", earliest_start=None, within="24h")]
    fetched = fetch_spot_quotes(
        spot_candidates(jobs, catalog, now), now=now, max_age_s=3600
    )
    assert fetched.missing == {}
    plans = plan_jobs(jobs, {}, now=now, catalog=catalog.with_spot_quotes(fetched.quotes))
    spot, od = (feasible(p) for p in plans)
    assert spot.chosen.cost_usd == pytest.approx(price * 2)
    assert spot.chosen.spot_price.startswith("$")
    assert f"AWS spot price history, {REGION} (dearest zone), set {at:%Y-%m-%dT%H:%M}Z" in (
        spot.chosen.spot_price
    )
    assert "AWS spot price history" in plan_markdown(spot, None)
    g5 = catalog.instance_type("g5.xlarge")
    assert od.chosen.cost_usd == pytest.approx(g5.on_demand_usd_per_h * od.chosen.duration_s / 3600)


def test_prices_older_than_max_age_leave_the_catalog_s_named(aws: str, catalog: Catalog) -> None:
    _, at = moto_quote("g5.xlarge")
    now = at + timedelta(hours=2)
    fetched = fetch_spot_quotes({REGION: ["g5.xlarge"]}, now=now, max_age_s=3600)
    assert fetched.quotes == []
    assert fetched.missing == {REGION: f"no spot price set within 3600 s for g5.xlarge in {REGION}"}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_aws_falls_back_to_the_catalog_labelled_and_plans(
    aws: str, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    now = datetime(2026, 12, 4, 5, tzinfo=UTC)
    jobs = [spot_job(regions=[REGION])]
    fetched = fetch_spot_quotes(spot_candidates(jobs, catalog, now), now=now, max_age_s=3600)
    assert fetched.quotes == []
    assert fetched.missing[REGION].startswith(f"no spot prices from AWS in {REGION}: ")
    assert "EndpointConnectionError" in fetched.missing[REGION]
    plan = feasible(plan_jobs(jobs, {}, now=now, catalog=catalog.with_spot_quotes([]))[0])
    catalog_usd = catalog.instance_type("g5.xlarge").spot_usd_per_h
    assert plan.chosen.cost_usd == pytest.approx(catalog_usd * 2)
    assert "catalog estimate" in plan.chosen.spot_price


def test_a_refusal_names_the_missing_permission(iam_user: Callable[[list[str]], Any]) -> None:
    session = iam_user(["ec2:DescribeInstances"])  # not ec2:DescribeSpotPriceHistory
    fetched = fetch_spot_quotes({REGION: ["g5.xlarge"]}, now=T0, max_age_s=3600, session=session)
    assert fetched.quotes == []
    assert PERMISSION == "ec2:DescribeSpotPriceHistory"
    assert fetched.missing[REGION].startswith(
        f"AWS refused the spot price history in {REGION}: needs {PERMISSION} ("
    )


def test_no_credentials_name_the_permission_and_the_chain(
    aws: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    fetched = fetch_spot_quotes({REGION: ["g5.xlarge"]}, now=T0, max_age_s=3600)
    assert fetched.quotes == []
    assert f"needs {PERMISSION} (no AWS credentials found" in fetched.missing[REGION]
