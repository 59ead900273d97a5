"""Checkpoint stall: how long the training thread is blocked per checkpoint of a large state.

A model of about 100 MB of float32 weights with AdamW (two moments each: about 300 MB of state
in all) trains on one CPU thread and checkpoints every CHECKPOINT_EVERY steps through the
harness, CheckFreq-style: the training thread copies the state, a writer thread serialises and
writes it. Prints one JSON object:

- `stall_ms`: per checkpoint, the training thread blocked (waiting for the previous write, if it
  is still going, plus the copy): median, p90, max; `final_wait_ms`: waiting for the last write.
- `serialise_on_thread_ms`: what serialising the same state on the training thread costs (the
  harness before this change did that at every checkpoint), median of a few.
- `write_mb_per_s`: the store's save (parts, fsync, manifest, prune) per checkpoint, median.
- `step_ms_baseline` / `step_ms_with_checkpoints`: the steps alone, and in the checkpointed run
  (the writer thread competes for the CPU and the GIL).

`checkpoint_stall.py 10` checkpoints every 10 steps instead.
"""

from __future__ import annotations

import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from carbonshift.checkpoint import CheckpointManager, LocalStore  # noqa: E402
from carbonshift.trainer import Harness  # noqa: E402
from carbonshift.training import Progress, TrainingContext  # noqa: E402

WIDTH, LAYERS, BATCH = 2048, 6, 16
CHECKPOINTS = 8
CHECKPOINT_EVERY = 20  # steps


class StepClock:
    """The step as the clock: a checkpoint every CHECKPOINT_EVERY steps, whatever their speed."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def on_progress(self, progress: Progress) -> None:
        self.now = float(progress.step)


def main() -> None:
    every = int(sys.argv[1]) if len(sys.argv) > 1 else CHECKPOINT_EVERY
    torch.set_num_threads(1)
    torch.manual_seed(0)
    layers: list[torch.nn.Module] = []
    for _ in range(LAYERS):
        layers += [torch.nn.Linear(WIDTH, WIDTH), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    x = torch.randn(BATCH, WIDTH)

    def step(_: int) -> None:
        optimizer.zero_grad()
        model(x).square().mean().backward()  # type: ignore[no-untyped-call]
        optimizer.step()

    for k in range(3):  # warm-up: the optimizer's moments exist from here on
        step(k)
    state_bytes = sum(
        t.numel() * t.element_size()
        for t in [*model.state_dict().values()]
        + [v for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v)]
    )

    t0 = time.perf_counter()
    for k in range(every):
        step(k)
    baseline_step_s = (time.perf_counter() - t0) / every

    serialise_s = []
    for _ in range(3):
        t0 = time.perf_counter()
        for obj in (model.state_dict(), optimizer.state_dict()):
            buffer = io.BytesIO()
            torch.save(obj, buffer)
        serialise_s.append(time.perf_counter() - t0)
    del buffer

    steps = every * CHECKPOINTS
    with tempfile.TemporaryDirectory() as tmp:
        clock = StepClock()
        ctx = TrainingContext(
            CheckpointManager(LocalStore(tmp), "stall", keep=2),
            on_progress=clock.on_progress,
            checkpoint_every_s=float(every),
            clock=clock,
        )
        harness = Harness(model, optimizer, context=ctx, total_steps=steps)
        t0 = time.perf_counter()
        for k in harness.steps():
            step(k)
        run_s = time.perf_counter() - t0
        harness.close()

    stalls_ms = sorted(s * 1000 for s in harness.stalls_s)
    blocked_s = sum(harness.stalls_s) + harness.final_wait_s
    writes = harness.writes
    print(
        json.dumps(
            {
                "state_mb": round(state_bytes / 2**20, 1),
                "checkpoints": len(writes),
                "checkpoint_every_steps": every,
                "stall_ms": {
                    "median": round(statistics.median(stalls_ms), 1),
                    "p90": round(stalls_ms[int(0.9 * (len(stalls_ms) - 1))], 1),
                    "max": round(stalls_ms[-1], 1),
                },
                "final_wait_ms": round(harness.final_wait_s * 1000, 1),
                "serialise_on_thread_ms": round(statistics.median(serialise_s) * 1000, 1),
                "serialise_in_background_ms": round(
                    statistics.median(w.serialise_s for w in writes) * 1000, 1
                ),
                "write_mb_per_s": round(
                    statistics.median(w.bytes / w.write_s for w in writes) / 2**20, 1
                ),
                "step_ms_baseline": round(baseline_step_s * 1000, 2),
                "step_ms_with_checkpoints": round((run_s - blocked_s) / steps * 1000, 2),
                "blocked_fraction": round(blocked_s / run_s, 4),
                "stalls_ms": [round(s, 1) for s in (t * 1000 for t in harness.stalls_s)],
            }
        )
    )


if __name__ == "__main__":
    main()
