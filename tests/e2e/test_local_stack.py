"""End to end: a real Prefect server, the process pool, `prefect deploy --all` from this repo's
prefect.yaml, a worker; the planner finds a forecast minimum a few tens of seconds ahead and the
training run is scheduled at that minute, picked up by the worker and completed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flows.local_stack import LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


def minute_trace(folder: Path, now: datetime) -> datetime:
    """GB at 1-minute resolution: 300 g/kWh but 20 g/kWh in the first minute >= 20 s ahead."""
    low = (now + timedelta(seconds=20)).replace(second=0, microsecond=0) + timedelta(minutes=1)
    rows = ["timestamp,g_per_kwh"]
    for m in range(-2, 15):
        t = now.replace(second=0, microsecond=0) + timedelta(minutes=m)
        rows.append(f"{t.isoformat()},{20 if t == low else 300}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "GB_minutes.csv").write_text("\n".join(rows) + "\n")
    return low


def test_plan_deploy_worker_train(tmp_path: Path) -> None:
    with LocalStack(REPO, tmp_path / "prefect", log=lambda _: None) as stack:
        daily = stack.deployment("plan-training", "daily")
        assert daily["schedules"][0]["schedule"]["cron"] == "0 0 * * *"
        assert daily["enforce_parameter_schema"] is True
        assert stack.deployment("train-model", "default")["enforce_parameter_schema"] is True

        now = datetime.now(UTC)
        low = minute_trace(tmp_path / "traces", now)
        planning = stack.run_deployment("plan-training", "daily", {
            "jobs": [{"name": "e2e-job", "work": {"duration": "1m", "instance_type": "g5.xlarge"},
                      "within": "10m", "regions": ["aws:eu-west-2"],
                      "entrypoint": "carbonshift.examples.tiny_train:train"}],
            "queue_file": None,
            "now": now.isoformat(),
            "config": {
                "forecast": {"providers": ["replay"], "traces_dir": str(tmp_path / "traces"),
                             "replay_as_of_now": False, "cache_dir": str(tmp_path / "cache")},
                "training": {"checkpoint_store": str(tmp_path / "ckpt"),
                             "compute_state_dir": str(tmp_path / "compute"),
                             "options": {"steps": "300"},
                             "forecast": {"providers": ["replay"],
                                          "traces_dir": str(tmp_path / "traces"),
                                          "replay_as_of_now": False}},
            },
        })
        planned = stack.wait(planning, 180)
        assert planned["state"]["type"] == "COMPLETED", planned["state"]

        (training,) = stack.runs_tagged("carbonshift-job:e2e-job")
        expected = datetime.fromisoformat(training["expected_start_time"].replace("Z", "+00:00"))
        assert expected == low
        done = stack.wait(training["id"], 240)
        assert done["state"]["type"] == "COMPLETED", done["state"]
        started = datetime.fromisoformat(done["start_time"].replace("Z", "+00:00"))
        assert low - timedelta(seconds=15) <= started <= low + timedelta(seconds=60)

        summary = stack.latest_artifact("plan-summary")
        record = stack.latest_artifact("emissions-e2e-job")
        assert summary is not None and record is not None
        rows = json.loads(summary["data"])
        assert rows[0]["job"] == "e2e-job"
        assert rows[0]["start_utc"] == f"{low:%Y-%m-%d %H:%M}"
        assert rows[0]["forecast_g_per_kwh"] == 20.0
        assert rows[0]["status"] == "scheduled"
        assert "| energy |" in record["data"]
        assert not list((tmp_path / "compute").glob("*.json"))  # compute released
