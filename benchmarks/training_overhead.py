"""Training overhead: the example model's steps with and without the harness (periodic
checkpoints written off the training thread), the grid monitor (its own thread, checking a
replayed actual series) and the energy meter, in the same run.

Prints one JSON object. Baseline and instrumented blocks alternate so that drift of the machine
affects both alike; `overhead_fraction` is the median of the paired block ratios (instrumented
block against the baseline block just before it). torch uses one thread in both arms.
Checkpoints are written every CHECKPOINT_EVERY_S, far more often than the 30-minute default, so
that their cost shows.

`overhead_fraction` is the per-step cost: the steps with their periodic checkpoints, without the
one checkpoint every run writes when it ends (its stall and the wait for its write are a cost per
run, not per step: `end_of_run_ms`). A block of 600 steps lasts about 2 s, so that one write
would otherwise weigh as if runs lasted 2 s; `overhead_with_end_fraction` keeps it in, for
comparison. `blocked_fraction` is the training thread's time inside checkpoints (its
stalls, the wait for the last write included) over the instrumented time; `harness_us_per_step`
is the harness loop alone (progress callback, clock, stop checks) around an empty step.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from carbonshift.checkpoint import CheckpointManager, LocalStore  # noqa: E402
from carbonshift.energy import EstimateMeter, Sample  # noqa: E402
from carbonshift.examples.tiny_train import make_step  # noqa: E402
from carbonshift.monitor import MonitorRule, RunFacts, Watch  # noqa: E402
from carbonshift.series import IntensitySeries, Signal  # noqa: E402
from carbonshift.trainer import Harness  # noqa: E402
from carbonshift.training import Progress, TrainingContext  # noqa: E402

BLOCK_STEPS = 600
ROUNDS = 20
CHECKPOINT_EVERY_S = 0.5
MONITOR_INTERVAL_S = 0.5
STALLS_S: list[float] = []  # every periodic checkpoint's stall, all blocks
FINAL_WAITS_S: list[float] = []  # each block's wait for its last write
END_OF_RUN_S: list[float] = []  # each block's last checkpoint: its stall and its wait


def baseline_block(step: Callable[[int], None], start: int) -> float:
    t0 = time.perf_counter()
    for k in range(start, start + BLOCK_STEPS):
        step(k)
    return (time.perf_counter() - t0) / BLOCK_STEPS


def instrumented_block(
    step: Callable[[int], None],
    model: Any,
    optimizer: Any,
    scheduler: Any,
    start: int,
    folder: Path,
) -> tuple[float, float, int, float]:
    """Per-step time without and with the end-of-run checkpoint, writes, blocked fraction."""
    manager = CheckpointManager(LocalStore(folder), "bench", keep=2)
    ctx = TrainingContext(
        manager, checkpoint_every_s=CHECKPOINT_EVERY_S, on_progress=lambda p: _progress(p)
    )
    harness = Harness(model, optimizer, scheduler, context=ctx, total_steps=start + BLOCK_STEPS)
    harness.step = start
    now = time.time()
    series = IntensitySeries(
        int(now) // 60 * 60 - 600, 60, np.full(120, 200.0), Signal.LCA, "bench"
    )
    done = threading.Event()
    meter = EstimateMeter(300.0, time.time, "bench")
    samples: list[Sample] = []
    watch = Watch(
        series,
        lambda: RunFacts(now, now + 7200, 3600),
        lambda a, b: series,
        time.time,
        done.wait,
        MonitorRule(interval_s=MONITOR_INTERVAL_S, grace_s=0),
        on_tick=lambda t: samples.append(Sample(t, meter.read_j())),
    )
    monitor = threading.Thread(target=watch.run)
    monitor.start()
    t0 = time.perf_counter()
    for k in harness.steps():
        step(k)
    elapsed = time.perf_counter() - t0
    done.set()
    monitor.join()
    harness.close()
    blocked_s = sum(harness.stalls_s) + harness.final_wait_s
    end_of_run_s = harness.stalls_s[-1] + harness.final_wait_s
    STALLS_S.extend(harness.stalls_s[:-1])
    FINAL_WAITS_S.append(harness.final_wait_s)
    END_OF_RUN_S.append(end_of_run_s)
    return (
        (elapsed - end_of_run_s) / BLOCK_STEPS,
        elapsed / BLOCK_STEPS,
        len(harness.writes),
        blocked_s / elapsed,
    )


def harness_us_per_step(model: Any, optimizer: Any, scheduler: Any, folder: Path) -> float:
    steps = 200_000
    ctx = TrainingContext(
        CheckpointManager(LocalStore(folder), "loop"), on_progress=lambda p: _progress(p)
    )
    harness = Harness(model, optimizer, scheduler, context=ctx, total_steps=steps)
    loop = harness.steps()
    t0 = time.perf_counter()
    for _ in range(steps - 1):  # the last one would write the final checkpoint
        next(loop)
    elapsed = time.perf_counter() - t0
    loop.close()
    harness.close()
    return elapsed / (steps - 1) * 1e6


def _progress(progress: Progress) -> None:
    pass  # the flow's reporter updates an artifact every few seconds; this is the call cost


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def main() -> None:
    global CHECKPOINT_EVERY_S
    if len(sys.argv) > 1:  # e.g. `training_overhead.py 1800` for the default interval
        CHECKPOINT_EVERY_S = float(sys.argv[1])
    # One intra-op thread: less run-to-run noise on a 2-core machine, the same for both arms.
    torch.set_num_threads(1)
    step, model, optimizer, scheduler, _ = make_step(0)
    for k in range(200):  # warm-up
        step(k)
    base, inst, inst_end, blocked, written = [], [], [], [], 0
    position = 200
    with tempfile.TemporaryDirectory() as tmp:
        loop_us = harness_us_per_step(model, optimizer, scheduler, Path(tmp) / "loop")
        for r in range(ROUNDS):
            base.append(baseline_block(step, position))
            position += BLOCK_STEPS
            per_step, with_end, n, blocked_fraction = instrumented_block(
                step, model, optimizer, scheduler, position, Path(tmp) / str(r)
            )
            inst.append(per_step)
            inst_end.append(with_end)
            blocked.append(blocked_fraction)
            written += n
            position += BLOCK_STEPS
    b, i = statistics.median(base), statistics.median(inst)
    # Paired: each instrumented block against the baseline block just before it.
    paired = statistics.median(x / y - 1 for x, y in zip(inst, base, strict=True))
    paired_end = statistics.median(x / y - 1 for x, y in zip(inst_end, base, strict=True))
    print(
        json.dumps(
            {
                "baseline_step_ms": round(b * 1000, 4),
                "instrumented_step_ms": round(i * 1000, 4),
                "overhead_fraction": round(paired, 4),
                "overhead_of_medians": round(i / b - 1, 4),
                "overhead_pct": round(paired * 100, 2),
                "overhead_with_end_fraction": round(paired_end, 4),
                "end_of_run_ms_median": round(statistics.median(END_OF_RUN_S) * 1000, 3),
                "blocked_fraction": round(statistics.median(blocked), 5),
                "harness_us_per_step": round(loop_us, 3),
                "stall_ms_median": _ms(statistics.median(STALLS_S) if STALLS_S else None),
                "stall_ms_max": _ms(max(STALLS_S) if STALLS_S else None),
                "final_wait_ms_median": round(statistics.median(FINAL_WAITS_S) * 1000, 3),
                "steps": BLOCK_STEPS * ROUNDS,
                "checkpoint_every_s": CHECKPOINT_EVERY_S,
                "checkpoints_written": written,
                "monitor_interval_s": MONITOR_INTERVAL_S,
            }
        )
    )


if __name__ == "__main__":
    main()
