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
