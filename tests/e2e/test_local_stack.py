"""End to end: a real Prefect server, the process pool, `prefect deploy --all` from this repo's
prefect.yaml, a worker; the planner finds a forecast minimum a few tens of seconds ahead and the
training run is scheduled at that minute, picked up by the worker and completed."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
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


def api(stack: LocalStack, method: str, path: str, body: dict | None = None) -> object:
    response = httpx.request(method, f"{stack.api_url}{path}", json=body, timeout=30)
    assert response.status_code < 400, f"{method} {path}: {response.status_code} {response.text}"
    return response.json()


def wait_for(stack: LocalStack, run_id: str, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        run = api(stack, "GET", f"/flow_runs/{run_id}")
        assert isinstance(run, dict)
        if run["state"]["type"] in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}:
            return run
        assert time.monotonic() < deadline, f"run {run_id} still {run['state']['type']}"
        time.sleep(1)


def test_plan_deploy_worker_train(tmp_path: Path) -> None:
    with LocalStack(REPO, tmp_path / "prefect", log=lambda _: None) as stack:
        deployments = api(stack, "POST", "/deployments/filter", {})
        names = {d["name"] for d in deployments}  # type: ignore[union-attr]
        assert {"daily", "default"} <= names
        daily = next(d for d in deployments if d["name"] == "daily")  # type: ignore[union-attr]
        assert daily["schedules"][0]["schedule"]["cron"] == "0 0 * * *"
        assert daily["enforce_parameter_schema"] is True

        now = datetime.now(UTC)
        low = minute_trace(tmp_path / "traces", now)
        parameters = {
            "jobs": [{"name": "e2e-job", "work": {"duration": "1m", "instance_type": "g5.xlarge"},
                      "within": "10m", "regions": ["aws:eu-west-2"]}],
            "queue_file": None,
            "now": now.isoformat(),
            "config": {"forecast": {"providers": ["replay"], "traces_dir": str(tmp_path / "traces"),
                                    "replay_as_of_now": False,
                                    "cache_dir": str(tmp_path / "cache")}},
        }
        planning = api(stack, "POST", f"/deployments/{daily['id']}/create_flow_run",
                       {"parameters": parameters})
        planned = wait_for(stack, planning["id"], 180)  # type: ignore[index]
        assert planned["state"]["type"] == "COMPLETED", planned["state"]

        runs = api(stack, "POST", "/flow_runs/filter",
                   {"flow_runs": {"tags": {"all_": ["carbonshift-job:e2e-job"]}}})
        (training,) = runs  # type: ignore[misc]
        expected = datetime.fromisoformat(training["expected_start_time"].replace("Z", "+00:00"))
        assert expected == low
        done = wait_for(stack, training["id"], 240)
        assert done["state"]["type"] == "COMPLETED", done["state"]
        started = datetime.fromisoformat(done["start_time"].replace("Z", "+00:00"))
        assert low - timedelta(seconds=15) <= started <= low + timedelta(seconds=60)

        artifacts = api(stack, "POST", "/artifacts/filter",
                        {"artifacts": {"key": {"any_": ["plan-summary", "run-e2e-job"]}}})
        by_key = {a["key"]: a for a in artifacts}  # type: ignore[union-attr]
        rows = json.loads(by_key["plan-summary"]["data"])
        assert rows[0]["job"] == "e2e-job"
        assert rows[0]["start_utc"] == f"{low:%Y-%m-%d %H:%M}"
        assert rows[0]["forecast_g_per_kwh"] == 20.0
        assert "Planned start" in by_key["run-e2e-job"]["data"]
