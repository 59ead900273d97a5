"""End to end: a real Prefect server, the process pool, `prefect deploy --all` from this repo's
prefect.yaml, a worker; the planner finds a forecast minimum a few tens of seconds ahead and the
training run is scheduled at that minute, picked up by the worker and completed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prefect.settings import PREFECT_WORKER_PREFETCH_SECONDS, PREFECT_WORKER_QUERY_SECONDS

from carbonshift.catalog import default_catalog
from carbonshift.job import JobSpec
from carbonshift.planner import plan_jobs
from carbonshift.traces import read_traces, traces_in
from flows.local_stack import LocalStack
from tests.helpers import wait_until

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


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    home = tmp_path_factory.mktemp("prefect")
    with LocalStack(REPO, home, log=lambda _: None) as running:
        yield running


def test_plan_deploy_worker_train(stack: LocalStack, tmp_path: Path) -> None:
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
    assert training["parameters"]["config"]["options"] == {"steps": "300"}
    expected = datetime.fromisoformat(training["expected_start_time"].replace("Z", "+00:00"))
    assert expected == low
    done = stack.wait(training["id"], 240)
    assert done["state"]["type"] == "COMPLETED", done["state"]
    assert_started_at_its_slot(stack, training["id"], low)

    summary = stack.latest_artifact("plan-summary")
    record = stack.latest_artifact("emissions-e2e-job")
    assert summary is not None and record is not None
    rows = json.loads(summary["data"])
    assert rows[0]["job"] == "e2e-job"
    assert rows[0]["start_utc"] == f"{low:%Y-%m-%d %H:%M}"
    assert rows[0]["forecast_g_per_kwh"] == 20.0
    assert rows[0]["status"] == "scheduled"
    assert "| energy, total (PUE included) |" in record["data"]
    assert not list((tmp_path / "compute").glob("*.json"))  # compute released


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def assert_started_at_its_slot(stack: LocalStack, run_id: str, slot: datetime) -> None:
    """From what the server recorded, not from when this test looked: the run was held until
    its slot, and the worker took it at the first poll that could.

    - Held: the server refuses Running before the scheduled time (WaitForScheduledTime, which
      rounds the wait to whole seconds: 0.5 s early at most). The run's `start_time` is the
      engine's first proposal, which a worker's prefetch can put before the slot, so the body's
      start is read from its first artifact instead: `created` is the server's clock.
    - Taken: the worker polls every PREFECT_WORKER_QUERY_SECONDS for runs due within
      PREFECT_WORKER_PREFETCH_SECONDS, so its Pending state (the worker's clock, this machine)
      falls at most one poll after `slot - prefetch`; two more polls' worth is margin for a
      poll in flight on a loaded machine. Neither bound depends on how fast the flow run's
      process starts.
    """
    query_s = float(PREFECT_WORKER_QUERY_SECONDS.value())
    prefetch_s = float(PREFECT_WORKER_PREFETCH_SECONDS.value())
    artifacts = stack.api("POST", "/artifacts/filter",
                          {"artifacts": {"flow_run_id": {"any_": [run_id]}}})
    assert artifacts, "the training run wrote no artifact"
    body_started = min(instant(a["created"]) for a in artifacts)
    assert body_started >= slot - timedelta(seconds=0.5), (body_started, slot)
    states = stack.api("GET", f"/flow_run_states/?flow_run_id={run_id}")
    # The worker's Pending is the first (the engine proposes Pending again as it starts).
    pending = min(instant(s["timestamp"]) for s in states if s["type"] == "PENDING")
    taken_by = slot - timedelta(seconds=prefetch_s) + timedelta(seconds=3 * query_s)
    assert slot - timedelta(seconds=prefetch_s + 1) <= pending <= taken_by, (pending, slot)


def flow_processes() -> list[str]:
    """Flow-run processes still alive (the worker runs each flow run in its own process)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "prefect.engine" in cmd or "tiny_train" in cmd:
                found.append(cmd)
    return found


def test_cancelling_a_running_training_releases_compute(stack: LocalStack, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    minute_trace(tmp_path / "traces", now)
    job = JobSpec.model_validate({"name": "e2e-cancel", "urgent": True, "within": "1h",
                                  "work": {"duration": "10m", "instance_type": "g5.xlarge"},
                                  "regions": ["aws:eu-west-2"],
                                  "entrypoint": "carbonshift.examples.tiny_train:train"})
    forecasts = read_traces(traces_in(tmp_path / "traces"))
    (plan,) = plan_jobs([job], {"aws:eu-west-2": forecasts["GB"]}, now=now,
                        catalog=default_catalog())
    compute = tmp_path / "compute"
    run_id = stack.run_deployment("train-model", "default", {
        "job": job.model_dump(mode="json", by_alias=True), "plan": plan.model_dump(mode="json"),
        "resume_from": None,
        "config": {"checkpoint_store": str(tmp_path / "ckpt"), "compute_state_dir": str(compute),
                   "options": {"steps": "1000000"},
                   "forecast": {"providers": ["replay"], "traces_dir": str(tmp_path / "traces"),
                                "replay_as_of_now": False}},
    })
    wait_until(lambda: list(compute.glob("*.json")),  # provisioned: training is under way
               timeout_s=120, what=lambda: stack.api("GET", f"/flow_runs/{run_id}")["state"])
    stack.api("POST", f"/flow_runs/{run_id}/set_state",
              {"state": {"type": "CANCELLING", "name": "Cancelling"}, "force": True})
    done = stack.wait(run_id, 120)
    assert done["state"]["type"] == "CANCELLED", done["state"]
    # Released and gone once the run is final; the deadline only allows for the process exit.
    wait_until(lambda: not list(compute.glob("*.json")) and not flow_processes(),
               timeout_s=30, what=lambda: (list(compute.glob("*.json")), flow_processes()))


def test_forecast_miss_reschedules_through_the_worker_and_ends_bit_exact(
    stack: LocalStack, tmp_path: Path
) -> None:
    """The plan says 100 g/kWh, the grid does 300: the run stops and is re-planned; the worker
    resumes the rest from its checkpoint, and it ends with the weights of an uninterrupted run."""
    import io

    import torch

    from carbonshift.checkpoint import CheckpointManager, LocalStore
    from carbonshift.examples import tiny_train
    from carbonshift.training import TrainingContext

    now = datetime.now(UTC)
    for name, value in (("planned", 100), ("actual", 300)):
        folder = tmp_path / name
        folder.mkdir()
        start = now.replace(second=0, microsecond=0) - timedelta(minutes=5)
        rows = ["timestamp,g_per_kwh"] + [
            f"{start + timedelta(minutes=m):%Y-%m-%dT%H:%M:%S}Z,{value}" for m in range(180)]
        (folder / "GB_minutes.csv").write_text("\n".join(rows) + "\n")
    # Held at step 2000 until stopped: the monitor's verdict never races the end of training.
    job = JobSpec.model_validate({"name": "e2e-miss", "urgent": True, "within": "2h",
                                  "work": {"duration": "10m", "instance_type": "g5.xlarge"},
                                  "regions": ["aws:eu-west-2"],
                                  "entrypoint": "tests.gated_train:train"})
    planned = read_traces(traces_in(tmp_path / "planned"))["GB"]
    (plan,) = plan_jobs([job], {"aws:eu-west-2": planned}, now=now, catalog=default_catalog())
    steps = 6000
    first_id = stack.run_deployment("train-model", "default", {
        "job": job.model_dump(mode="json", by_alias=True), "plan": plan.model_dump(mode="json"),
        "resume_from": None,
        "config": {"checkpoint_store": str(tmp_path / "ckpt"),
                   "compute_state_dir": str(tmp_path / "compute"),
                   "options": {"steps": str(steps), "gate_step": "2000"},
                   "monitor": {"interval_s": 2, "grace_s": 0, "window_s": 60},
                   "forecast": {"providers": ["replay"], "traces_dir": str(tmp_path / "actual"),
                                "replay_as_of_now": False,
                                "cache_dir": str(tmp_path / "cache")}},
    })
    first = stack.wait(first_id, 180)
    assert first["state"]["name"] == "Rescheduled", first["state"]
    assert "above the forecast" in first["state"]["message"]
    # The rest was re-planned on what the grid now does, so the resumed run carries on to the end.
    (rest,) = stack.runs_tagged("carbonshift-job:e2e-miss")
    assert rest["parameters"]["resume_from"].startswith("file://")
    assert rest["parameters"]["config"]["replans"] == 1
    done = stack.wait(rest["id"], 240)
    assert done["state"]["name"] == "Completed", done["state"]

    whole = TrainingContext(CheckpointManager(LocalStore(tmp_path / "whole"), "w"),
                            options={"steps": str(steps)})
    assert tiny_train.train(whole).completed

    def weights(folder: Path, prefix: str) -> dict[str, torch.Tensor]:
        found = CheckpointManager(LocalStore(folder), prefix).latest()
        assert found is not None and found.step == steps
        state: dict[str, torch.Tensor] = torch.load(io.BytesIO(found.parts["model.pt"]),
                                                    weights_only=True)
        return state

    (run_folder,) = [d for d in (tmp_path / "ckpt" / "e2e-miss").iterdir() if d.is_dir()]
    a, b = weights(tmp_path / "whole", "w"), weights(run_folder.parent, run_folder.name)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not list((tmp_path / "compute").glob("*.json"))
