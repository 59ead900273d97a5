"""A training entrypoint for the scale tier, without torch: forty runs of the example model cost
minutes of CPU on two cores, and the tier measures the orchestration, not the training.

Options: `steps` (default 10), `step_s` (seconds per step, default 0.1), `hold_at` (a fresh run
waits there, after checkpointing, until asked to stop or `HOLD_S` passes). A checkpoint is
written at every step, so a resumed run continues where its predecessor left off."""

from __future__ import annotations

import json

from carbonshift.training import Progress, TrainingContext, TrainingOutcome

HOLD_S = 300.0


def train(ctx: TrainingContext) -> TrainingOutcome:
    steps = int(ctx.options.get("steps", "10"))
    step_s = float(ctx.options.get("step_s", "0.1"))
    hold_at = int(ctx.options.get("hold_at", "-1"))
    found = ctx.checkpoints.resume_point(
        resume_from=ctx.resume_from, allow_fresh_start=ctx.allow_fresh_start
    )
    step = found.step if found is not None else 0
    fresh = found is None
    uri = found.uri if found is not None else None
    while step < steps:
        if ctx.stop.wait(step_s):
            return TrainingOutcome(False, step, steps, uri, "asked to stop")
        step += 1
        uri = ctx.checkpoints.save(step, {"state": json.dumps({"step": step}).encode()}, {})
        if ctx.on_progress is not None:
            ctx.on_progress(Progress(step, steps))
        if fresh and step == hold_at and not ctx.stop.wait(HOLD_S):
            raise TimeoutError(f"held at step {step}: nobody stopped this run")
    return TrainingOutcome(True, step, steps, uri)
