"""What trains: a `module:function` entrypoint called with a TrainingContext, or a command run as
a subprocess under the checkpoint protocol below."""

from __future__ import annotations

import importlib
import os
import shlex
import signal
import subprocess
from collections.abc import Callable
from functools import partial
from typing import cast

from carbonshift.training import TrainingContext, TrainingOutcome

Trainer = Callable[[TrainingContext], TrainingOutcome]

# A command entrypoint that stopped cleanly at a checkpoint exits with this.
EXIT_STOPPED = 3


def load_entrypoint(text: str) -> Trainer:
    module, sep, function = text.partition(":")
    if not sep:
        raise ValueError(
            f"entrypoint {text!r}: write module:function, e.g. "
            "carbonshift.examples.tiny_train:train"
        )
    return cast(Trainer, getattr(importlib.import_module(module), function))


def trainer_for(job: str, entrypoint: str | None) -> Trainer:
    """The job's entrypoint as a callable: `module:function` is imported, anything else is a
    command line."""
    if not entrypoint:
        raise ValueError(
            f"job {job!r}: entrypoint: give module:function or a command "
            "to train with, e.g. carbonshift.examples.tiny_train:train"
        )
    if ":" in entrypoint and " " not in entrypoint.strip():
        return load_entrypoint(entrypoint)
    return partial(run_command, entrypoint)


def command_environment(ctx: TrainingContext) -> dict[str, str]:
    """What a command learns about its checkpoints, as environment variables: the store
    (CARBONSHIFT_CHECKPOINT_URI: a file://, s3:// or gs:// URI for `open_store`; a file store's
    folder also as CARBONSHIFT_CHECKPOINT_ROOT) and the run folder's prefix inside it. The job's
    options arrive as CARBONSHIFT_<OPTION>."""
    uri = ctx.checkpoints.store.uri
    local = {"CARBONSHIFT_CHECKPOINT_ROOT": uri.removeprefix("file://")}
    return {
        "CARBONSHIFT_CHECKPOINT_URI": uri,
        **(local if uri.startswith("file://") else {}),
        "CARBONSHIFT_CHECKPOINT_PREFIX": ctx.checkpoints.prefix,
        "CARBONSHIFT_RESUME_FROM": ctx.resume_from or "",
        "CARBONSHIFT_ALLOW_FRESH_START": "1" if ctx.allow_fresh_start else "0",
        "CARBONSHIFT_CHECKPOINT_EVERY_S": f"{ctx.checkpoint_every_s:g}",
        **{f"CARBONSHIFT_{k.upper()}": v for k, v in ctx.options.items()},
    }


def run_command(command: str, ctx: TrainingContext) -> TrainingOutcome:
    """A training command: stop means SIGTERM and a stop marker; the latest checkpoint says
    how far it got. Exit 0 is complete, EXIT_STOPPED a clean stop, anything else a failure."""
    # The command may not use the Harness: the same resume rule is checked before it starts.
    ctx.checkpoints.resume_point(
        resume_from=ctx.resume_from, allow_fresh_start=ctx.allow_fresh_start
    )
    env = {**os.environ, **command_environment(ctx)}
    ctx.checkpoints.clear_stop()
    proc = subprocess.Popen(shlex.split(command), env=env, stdin=subprocess.DEVNULL)
    stopped = False
    try:
        while proc.poll() is None:
            if ctx.stop.wait(1.0):
                ctx.checkpoints.request_stop("stop requested")
                proc.send_signal(signal.SIGTERM)
                stopped = True
                proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    latest = ctx.checkpoints.latest()
    step = int(latest.meta.get("step", 0)) if latest else 0
    total = int(latest.meta.get("total_steps", step)) if latest else 0
    # Our SIGTERM can land before the command installs its handler (it is still importing):
    # that is the stop we asked for, not a crash; it resumes from its last checkpoint, if any.
    stopped_early = stopped and proc.returncode == -signal.SIGTERM
    if proc.returncode not in (0, EXIT_STOPPED) and not stopped_early:
        raise RuntimeError(f"training command exited {proc.returncode}: {command}")
    completed = proc.returncode == 0
    return TrainingOutcome(
        completed,
        step,
        total,
        latest.uri if latest else None,
        None if completed else "stop requested",
    )
