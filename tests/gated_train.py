"""A training entrypoint for flow tests: tiny_train that, on a fresh run, holds at step
`gate_step` until the run is asked to stop, so the monitor's verdict lands mid-run (at step 1 to
`gate_step`) however fast the machine trains: progress, not a race with the monitor's tick.
A resumed run trains on."""

from __future__ import annotations

from dataclasses import replace

from carbonshift.examples import tiny_train
from carbonshift.training import Progress, TrainingContext, TrainingOutcome

HOLD_S = 300.0  # a stop that never comes fails the run instead of hanging the suite


def train(ctx: TrainingContext) -> TrainingOutcome:
    gate_step = int(ctx.options.get("gate_step", "0"))
    forward = ctx.on_progress

    def hold(progress: Progress) -> None:
        if forward is not None:
            forward(progress)
        held = ctx.resume_from is None and gate_step <= progress.step < progress.total_steps
        if held and not ctx.stop.wait(HOLD_S):
            raise TimeoutError(f"held at step {progress.step}: the monitor never stopped it")

    return tiny_train.train(replace(ctx, on_progress=hold) if gate_step else ctx)
