"""The training flow publishes its run chart and emits its events: a forecast miss stops the
run (as in test_train_flow), and the chart artifact and the events on the server say so."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prefect.client.schemas.objects import StateType

from flows.train import train_model
from tasks.events import FORECAST_MISS, RUN_FINISHED, RUN_RESCHEDULED, RUN_STARTED, job_resource
from tests.flows.test_train_flow import artifact_data, config, job, minute_csv, plan_for
from tests.tasks.test_events import read_back

pytestmark = pytest.mark.integration


def test_a_stopped_run_charts_the_miss_and_emits_its_events(deployment: None,
                                                             tmp_path: Path) -> None:
    now = datetime.now(UTC)
    minute_csv(tmp_path / "fc", now, 100.0)     # what the plan was made on
    minute_csv(tmp_path / "actual", now, 300.0)  # what the grid did: +200%
    spec = job("train-chart", "tests.gated_train:train")  # holds at step 1000 until stopped
    held = config(tmp_path, tmp_path / "actual")
    held.options["gate_step"] = "1000"
    state = train_model(spec, plan_for(spec, tmp_path / "fc", now), None, held,
                        return_state=True)
    assert state.type == StateType.COMPLETED and state.name == "Rescheduled", state.message

    url = artifact_data("run-chart-train-chart")
    assert url.startswith("data:image/svg+xml;base64,")
    svg = base64.b64decode(url.split(",", 1)[1]).decode()
    texts = set(t.strip() for t in re.findall(r"<!-- (.*?) -->", svg))
    assert "train-chart: forecast vs actual intensity in aws:eu-west-2" in texts
    assert {"run", "monitor stop / re-plan", "actual at monitor checks"} <= texts
    assert any(t.startswith("forecast miss: re-plan (300 vs 100)") for t in texts), texts
    assert any(t.startswith("actual (") for t in texts), texts  # the actuals were fetched

    events = read_back(job_resource("train-chart")["prefect.resource.id"], 4)
    assert [e.event for e in events] == [RUN_STARTED, FORECAST_MISS, RUN_FINISHED,
                                         RUN_RESCHEDULED]
    finished = events[2].payload
    assert finished["status"] == "stopped" and finished["emissions_kg"] > 0
    assert events[1].payload["actual_g_per_kwh"] == pytest.approx(300.0)
