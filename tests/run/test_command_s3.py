"""A command entrypoint checkpoints to the run's store whatever its scheme: the example model
run as a command writes to S3 (moto) through CARBONSHIFT_CHECKPOINT_URI."""

from __future__ import annotations

import boto3
import pytest

from carbonshift.checkpoint import CheckpointManager, open_store
from carbonshift.run import run_command
from carbonshift.training import TrainingContext
from tests.run.test_command import TINY

pytestmark = pytest.mark.integration


def test_the_example_command_checkpoints_to_s3(aws: str) -> None:
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="cmd-ckpt")
    store, base = open_store("s3://cmd-ckpt/runs")
    ctx = TrainingContext(CheckpointManager(store, "job/run-1"), checkpoint_every_s=0.2,
                          options={"steps": "120"})
    outcome = run_command(TINY, ctx)
    assert outcome.completed and outcome.step == 120
    latest = CheckpointManager(store, "job/run-1").latest()
    assert latest is not None and latest.step == 120
    assert outcome.checkpoint_uri == latest.uri and latest.uri.startswith("s3://cmd-ckpt/runs/")
