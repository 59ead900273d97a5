"""An example training job: a small MLP on generated data, about a minute on one CPU
(20,000 steps; `options["steps"]` sets fewer).

As an entrypoint: `carbonshift.examples.tiny_train:train` (receives a TrainingContext).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from carbonshift.trainer import Harness
from carbonshift.training import TrainingContext, TrainingOutcome

FEATURES, CLASSES, HIDDEN, BATCH = 64, 10, 256, 256


def make_data(seed: int = 0, samples: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
    """Two noisy clusters per class; the same every time for a seed."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(CLASSES, FEATURES, generator=gen) * 2
    labels = torch.randint(0, CLASSES, (samples,), generator=gen)
    x = centres[labels] + torch.randn(samples, FEATURES, generator=gen)
    return x, labels


def build(
    seed: int = 0,
) -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(FEATURES, HIDDEN),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.1),
        torch.nn.Linear(HIDDEN, HIDDEN),
        torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN, CLASSES),
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=500, gamma=0.5)
    return model, optimizer, scheduler


def make_step(seed: int = 0) -> tuple[Callable[[int], None], Any, Any, Any, int]:
    """One optimisation step per call, batch chosen by the step (the data position)."""
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # a small model: one thread each lets runs share a machine
    x, y = make_data(seed)
    model, optimizer, scheduler = build(seed)
    per_epoch = len(x) // BATCH

    def step(k_global: int) -> None:
        # Batch k of a per-epoch shuffle seeded by the epoch: resumable from the step alone.
        epoch, k = divmod(k_global, per_epoch)
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed + epoch))
        idx = order[k * BATCH : (k + 1) * BATCH]
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        scheduler.step()

    return step, model, optimizer, scheduler, per_epoch


def train(ctx: TrainingContext) -> TrainingOutcome:
    steps = int(ctx.options.get("steps", "20000"))
    step, model, optimizer, scheduler, per_epoch = make_step(int(ctx.options.get("seed", "0")))
    harness = Harness(
        model, optimizer, scheduler, context=ctx, total_steps=steps, steps_per_epoch=per_epoch
    )
    try:
        harness.resume()
        for k in harness.steps():
            step(k)
    finally:
        harness.close()
    assert harness.outcome is not None
    return harness.outcome


def main() -> int:
    """As a command entrypoint: the flow passes the checkpoint store and options in the
    environment (CARBONSHIFT_CHECKPOINT_URI: a folder, s3:// or gs:// store, or the older
    CARBONSHIFT_CHECKPOINT_ROOT folder; CARBONSHIFT_CHECKPOINT_PREFIX, CARBONSHIFT_STEPS,
    CARBONSHIFT_RESUME_FROM, CARBONSHIFT_ALLOW_FRESH_START, CARBONSHIFT_CHECKPOINT_EVERY_S) and
    asks it to stop with SIGTERM or a stop marker in the store."""
    import os
    import signal

    from carbonshift.checkpoint import CheckpointManager, open_store

    uri = os.environ.get("CARBONSHIFT_CHECKPOINT_URI") or os.environ["CARBONSHIFT_CHECKPOINT_ROOT"]
    store, base = open_store(uri)
    prefix = os.environ.get("CARBONSHIFT_CHECKPOINT_PREFIX", "")
    manager = CheckpointManager(store, "/".join(p for p in (base, prefix) if p))
    ctx = TrainingContext(
        manager,
        options={"steps": os.environ.get("CARBONSHIFT_STEPS", "20000")},
        resume_from=os.environ.get("CARBONSHIFT_RESUME_FROM") or None,
        allow_fresh_start=os.environ.get("CARBONSHIFT_ALLOW_FRESH_START") == "1",
        checkpoint_every_s=float(os.environ.get("CARBONSHIFT_CHECKPOINT_EVERY_S", "1800")),
    )
    signal.signal(signal.SIGTERM, lambda *_: ctx.stop.set())
    outcome = train(ctx)
    return 0 if outcome.completed else 3


if __name__ == "__main__":
    raise SystemExit(main())
