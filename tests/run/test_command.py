"""The command runner's protocol: what a command finds in its environment, what its exit codes
mean, how it is stopped; and how an entrypoint becomes a trainer."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import pytest

from carbonshift.checkpoint import CheckpointManager, LocalStore, NoCheckpointToResume, manager_for
from carbonshift.examples import tiny_train
from carbonshift.run import EXIT_STOPPED, load_entrypoint, run_command, trainer_for
from carbonshift.training import TrainingContext

TINY = f"{sys.executable} -m carbonshift.examples.tiny_train"


def script(tmp_path: Path, exit_code: int) -> str:
    """A command that writes its CARBONSHIFT_* environment to env.json and exits."""
    path = tmp_path / "cmd.py"
    path.write_text(
        "import json, os, sys\n"
        "env = {k: v for k, v in os.environ.items() if k.startswith('CARBONSHIFT_')}\n"
        f"open({str(tmp_path / 'env.json')!r}, 'w').write(json.dumps(env))\n"
        f"sys.exit({exit_code})\n"
    )
    return f"{sys.executable} {path}"


def test_the_command_learns_its_checkpoints_and_options(tmp_path: Path) -> None:
    ctx = TrainingContext(CheckpointManager(LocalStore(tmp_path / "ckpt"), "run-9"),
                          checkpoint_every_s=60.0, options={"steps": "50", "lr": "0.1"})
    outcome = run_command(script(tmp_path, 0), ctx)
    assert outcome.completed and outcome.step == 0 and outcome.checkpoint_uri is None
    env = json.loads((tmp_path / "env.json").read_text())
    assert env == {
        "CARBONSHIFT_CHECKPOINT_URI": f"file://{(tmp_path / 'ckpt').resolve()}",
        "CARBONSHIFT_CHECKPOINT_ROOT": str((tmp_path / "ckpt").resolve()),
        "CARBONSHIFT_CHECKPOINT_PREFIX": "run-9",
        "CARBONSHIFT_RESUME_FROM": "",
        "CARBONSHIFT_ALLOW_FRESH_START": "0",
        "CARBONSHIFT_CHECKPOINT_EVERY_S": "60",
        "CARBONSHIFT_STEPS": "50",
        "CARBONSHIFT_LR": "0.1",
    }


@pytest.mark.integration
def test_a_command_learns_a_bucket_store_by_its_uri(aws: str) -> None:
    import boto3

    from carbonshift.checkpoint import open_store
    from carbonshift.run import checkpoints_for
    from carbonshift.run.command import command_environment

    boto3.client("s3").create_bucket(Bucket="ckpt-bucket")
    ctx = TrainingContext(checkpoints_for("s3://ckpt-bucket/team", "nightly", "run-9", None, 3))
    env = command_environment(ctx)
    assert env["CARBONSHIFT_CHECKPOINT_URI"] == "s3://ckpt-bucket/team"
    assert env["CARBONSHIFT_CHECKPOINT_PREFIX"] == "nightly/run-9"
    assert "CARBONSHIFT_CHECKPOINT_ROOT" not in env  # no folder to name
    # What the command does with them: the same run folder, on the same bucket.
    store, prefix = open_store(env["CARBONSHIFT_CHECKPOINT_URI"])
    assert prefix == ""
    mine = CheckpointManager(store, env["CARBONSHIFT_CHECKPOINT_PREFIX"])
    mine.save(7, {"model": b"seven"}, {"step": 7})
    mine.close()
    found = ctx.checkpoints.latest()
    assert found is not None and found.step == 7
    assert found.uri == "s3://ckpt-bucket/team/nightly/run-9/ckpt-000000000007"


def test_exit_codes(tmp_path: Path) -> None:
    ctx = TrainingContext(CheckpointManager(LocalStore(tmp_path / "ckpt"), "run"))
    stopped = run_command(script(tmp_path, EXIT_STOPPED), ctx)
    assert not stopped.completed and stopped.stopped_reason == "stop requested"
    with pytest.raises(RuntimeError, match="training command exited 1: "):
        run_command(script(tmp_path, 1), ctx)


def test_trainer_for_an_entrypoint() -> None:
    assert trainer_for("j", "carbonshift.examples.tiny_train:train") is tiny_train.train
    assert load_entrypoint("carbonshift.examples.tiny_train:train") is tiny_train.train
    with pytest.raises(ValueError, match="write module:function"):
        load_entrypoint("carbonshift.examples.tiny_train")
    with pytest.raises(ValueError, match="job 'j': entrypoint: give module:function"):
        trainer_for("j", None)
    command = trainer_for("j", TINY)
    assert command.func is run_command and command.args == (TINY,)  # type: ignore[attr-defined]


@pytest.mark.slow
def test_command_entrypoint_stops_cleanly_on_request(tmp_path: Path) -> None:
    manager = CheckpointManager(LocalStore(tmp_path), "cmd")
    ctx = TrainingContext(manager, options={"steps": "20000"}, checkpoint_every_s=0.2)

    def stop_once_it_has_checkpointed() -> None:
        # Progress, not a timer: a stop before the command installs its handler is another test.
        while manager.latest() is None and not ctx.stop.wait(0.05):
            pass
        ctx.stop.set()

    watcher = threading.Thread(target=stop_once_it_has_checkpointed, daemon=True)
    watcher.start()
    try:
        outcome = run_command(TINY, ctx)
    finally:
        ctx.stop.set()
        watcher.join()
    assert not outcome.completed and 0 < outcome.step < 20000
    assert outcome.checkpoint_uri is not None and outcome.checkpoint_uri.endswith(
        f"ckpt-{outcome.step:012d}")


@pytest.mark.slow
def test_command_stopped_before_it_can_handle_sigterm_is_stopped_not_crashed(
    tmp_path: Path,
) -> None:
    # Seen as a flake: a stop requested while the command was still importing killed it with
    # the SIGTERM meant to stop it, and the run failed with "training command exited -15".
    ctx = TrainingContext(CheckpointManager(LocalStore(tmp_path), "early"))
    ctx.stop.set()
    outcome = run_command(TINY, ctx)
    assert not outcome.completed and outcome.step == 0 and outcome.checkpoint_uri is None
    assert outcome.stopped_reason == "stop requested"


@pytest.mark.slow
def test_command_entrypoint_with_resume_from_nowhere_is_not_started(tmp_path: Path) -> None:
    nowhere = f"file://{tmp_path}/run/ckpt-000000000007"
    ctx = TrainingContext(manager_for(nowhere), options={"steps": "50"}, resume_from=nowhere)
    with pytest.raises(NoCheckpointToResume, match="resume_from .*ckpt-000000000007"):
        run_command(TINY, ctx)
    ctx.allow_fresh_start = True
    outcome = run_command(TINY, ctx)
    assert outcome.completed and outcome.step == 50
