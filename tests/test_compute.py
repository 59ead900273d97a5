from __future__ import annotations

from pathlib import Path

from carbonshift.compute import LaunchRequest, LocalCompute


def test_local_compute_by_run_id(tmp_path: Path) -> None:
    compute = LocalCompute(tmp_path)
    request = LaunchRequest("train-a", "run-1", "aws:eu-west-2", "g5.xlarge")
    instance = compute.provision(request)
    assert [i.run_id for i in compute.held()] == ["run-1"]
    assert compute.provision(request) == instance  # a retried provision: the same instance
    # Another process (a worker's hook) finds it by the run's id alone.
    again = LocalCompute(tmp_path)
    assert again.find("run-1") == instance
    assert not again.interrupted("run-1")
    (tmp_path / "run-1.interrupted").touch()
    assert again.interrupted("run-1")
    assert again.release("run-1") is True
    assert again.release("run-1") is False  # idempotent
    assert compute.held() == []


def test_local_compute_keeps_the_heartbeat_uri(tmp_path: Path) -> None:
    compute = LocalCompute(tmp_path)
    uri = "s3://bucket/job/run-1/remote/run-1/heartbeat.json"
    launched = compute.provision(
        LaunchRequest("train-a", "run-1", "aws:eu-west-2", "g5.xlarge", heartbeat_uri=uri)
    )
    compute.provision(LaunchRequest("train-b", "run-2", "aws:eu-west-2", "g5.xlarge"))
    assert launched.heartbeat_uri == uri
    assert LocalCompute(tmp_path).find("run-1") == launched  # through the JSON state
    assert {i.run_id: i.heartbeat_uri for i in LocalCompute(tmp_path).held()} == {
        "run-1": uri, "run-2": None}
