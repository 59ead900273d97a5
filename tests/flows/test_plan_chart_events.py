"""The planning flow emits `carbonshift.plan.made` per planned job and publishes its plan chart
(matplotlib, with the window shaded) as an image artifact."""

from __future__ import annotations

import base64
import re
from datetime import timedelta
from pathlib import Path

import pytest

from flows.plan import plan_training
from tasks.events import PLAN_MADE, job_resource
from tests.flows.conftest import NOW, write_trace
from tests.flows.test_plan_flow import artifact, config, job
from tests.tasks.test_events import read_back

pytestmark = pytest.mark.integration


def test_plan_made_events_and_the_plan_chart(deployment: None, tmp_path: Path) -> None:
    write_trace(tmp_path, "GB", low_hour=5)
    jobs = [job("events-a"), job("events-late", within="30m")]
    plan_training(jobs=jobs, queue_file=None, config=config(tmp_path), now=NOW)

    (made,) = read_back(job_resource("events-a")["prefect.resource.id"], 1)
    assert made.event == PLAN_MADE
    assert made.payload["region"] == "aws:eu-west-2"
    assert made.payload["start"] == (NOW + timedelta(hours=5)).isoformat()
    assert made.payload["forecast_g_per_kwh"] == 50.0
    assert read_back(job_resource("events-late")["prefect.resource.id"], 0, timeout_s=0) == []

    url = str(artifact("plan-chart-events-a").data)
    svg = base64.b64decode(url.removeprefix("data:image/svg+xml;base64,")).decode()
    texts = {t.strip() for t in re.findall(r"<!-- (.*?) -->", svg)}
    assert {"events-a: forecast per region", "aws:eu-west-2", "chosen run, aws:eu-west-2",
            "carbon intensity (gCO2/kWh)"} <= texts
    assert len([t for t in texts if re.fullmatch(r"\d\d:00", t)]) >= 4  # hour ticks
