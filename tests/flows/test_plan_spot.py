"""plan-training with live spot prices: AWS's quote (the emulator's) in the plan and its
artifacts, and with AWS out of reach the catalog's, labelled, and the run still scheduled."""

from __future__ import annotations

import json
import logging
import socket
from datetime import UTC, timedelta
from pathlib import Path

import boto3
import pytest
from prefect.client.schemas.objects import StateType

from carbonshift.config import ForecastConfig, PlanningConfig
from carbonshift.job import JobSpec
from carbonshift.spot_pricing import SpotPricing
from flows.plan import plan_training
from tasks.scheduling import job_runs
from tests.flows.conftest import NOW, write_trace
from tests.flows.test_plan_flow import DEPLOYMENT, artifact, config

pytestmark = pytest.mark.integration


def spot_job(name: str) -> JobSpec:
    return JobSpec.model_validate(
        {"name": name, "work": {"duration": "1h", "instance_type": "g5.xlarge"},
         "within": "24h", "regions": ["aws:eu-west-2"], "interruptible": True}
    )


def test_unreachable_aws_plans_at_the_catalog_price_labelled_and_schedules(
    deployment: None, aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")  # nothing listens
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    write_trace(tmp_path, "GB", low_hour=4)
    with caplog.at_level(logging.WARNING):
        (done,) = plan_training(jobs=[spot_job("spot-down")], queue_file=None,
                                config=config(tmp_path), now=NOW,
                                spot_pricing=SpotPricing(enabled=True))
    assert done.status == "scheduled"
    assert "no spot prices from AWS in aws:eu-west-2" in caplog.text
    (run,) = job_runs(DEPLOYMENT, "spot-down", [StateType.SCHEDULED])
    chosen = run.parameters["plan"]["chosen"]
    assert chosen["cost_usd"] == pytest.approx(0.40 * 1.0)  # the catalog's g5.xlarge spot $/h
    assert "catalog estimate" in chosen["spot_price"]
    assert f"Spot price: {chosen['spot_price']}." in artifact("plan-spot-down").data


def test_the_plan_carries_the_quote_aws_answers(deployment: None, aws: str) -> None:
    ec2 = boto3.client("ec2", region_name="eu-west-2")
    records = ec2.describe_spot_price_history(
        InstanceTypes=["g5.xlarge"], ProductDescriptions=["Linux/UNIX"]
    )["SpotPriceHistory"]
    assert records
    # the emulator's zones each have one price; the region's quote is the dearest zone's
    price = max(float(r["SpotPrice"]) for r in records)
    at = max(r["Timestamp"] for r in records).astimezone(UTC)
    planning = PlanningConfig(forecast=ForecastConfig(providers=["static"]), schedule=False)
    plan_training(jobs=[spot_job("spot-live")], queue_file=None, config=planning,
                  now=at + timedelta(minutes=10),  # the emulator dates its prices 2006
                  spot_pricing=SpotPricing(enabled=True, max_age_s=3600))
    shown = f"${price:.4f}/h" if price >= 0.00005 else f"${price:.1e}/h"
    label = (
        f"{shown}, AWS spot price history, aws:eu-west-2 (dearest zone), "
        f"set {at:%Y-%m-%dT%H:%M}Z"
    )
    assert f"Spot price: {label}." in artifact("plan-spot-live").data
    (row,) = [r for r in json.loads(artifact("plan-summary").data) if r["job"] == "spot-live"]
    assert row["spot_price"] == label
    assert row["expected_cost_usd"] == round(price * 1.0, 2)  # 1 h at the quoted $/h
