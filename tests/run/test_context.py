"""Where a run checkpoints: its own folder when fresh, the named one when resumed."""

from __future__ import annotations

from pathlib import Path

import pytest

from carbonshift.run import checkpoints_for


def test_a_fresh_run_checkpoints_in_its_own_folder(tmp_path: Path) -> None:
    first = checkpoints_for(str(tmp_path), "nightly", "run-1", None, keep=2)
    again = checkpoints_for(f"file://{tmp_path}", "nightly", "run-2", None, keep=2)
    assert first.uri == f"file://{tmp_path.resolve()}/nightly/run-1" and first.keep == 2
    assert again.uri == f"file://{tmp_path.resolve()}/nightly/run-2"  # yesterday's never counts


def test_a_resumed_run_continues_where_its_checkpoint_is(tmp_path: Path) -> None:
    uri = f"file://{tmp_path}/nightly/run-1/ckpt-000000000042"
    resumed = checkpoints_for(str(tmp_path / "elsewhere"), "nightly", "run-2", uri, keep=3)
    assert resumed.uri == f"file://{tmp_path.resolve()}/nightly/run-1"


@pytest.mark.integration
@pytest.mark.parametrize("scheme", ["s3", "gs"])
def test_bucket_stores_work_as_folders_do(scheme: str, request: pytest.FixtureRequest) -> None:
    if scheme == "s3":
        import boto3

        request.getfixturevalue("aws")
        boto3.client("s3").create_bucket(Bucket="ckpt-bucket")
    else:
        from carbonshift.checkpoint.gcs import default_client

        request.getfixturevalue("gcs")
        default_client().create_bucket("ckpt-bucket")
    fresh = checkpoints_for(f"{scheme}://ckpt-bucket/team", "nightly", "run-1", None, keep=2)
    assert fresh.uri == f"{scheme}://ckpt-bucket/team/nightly/run-1" and fresh.keep == 2
    uri = fresh.save(42, {"model": b"w"}, {"step": 42})
    fresh.close()
    assert uri == f"{scheme}://ckpt-bucket/team/nightly/run-1/ckpt-000000000042"
    resumed = checkpoints_for(f"{scheme}://ckpt-bucket/elsewhere", "nightly", "run-2", uri, keep=3)
    assert resumed.uri == f"{scheme}://ckpt-bucket/team/nightly/run-1"
    found = resumed.latest()
    assert found is not None and found.step == 42 and found.uri == uri
