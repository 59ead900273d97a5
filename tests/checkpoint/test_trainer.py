"""Resume correctness: stopped and resumed (twice) ends with the same weights, bit for bit."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import torch

from carbonshift.checkpoint import CheckpointManager, LocalStore
from carbonshift.examples import tiny_train
from carbonshift.training import Progress, TrainingContext, TrainingOutcome

STEPS = 120


class StopAt:
    """A progress callback that asks the trainer to stop at a given step."""

    def __init__(self, stop: threading.Event, at: int | None) -> None:
        self.stop = stop
        self.at = at
        self.seen: list[int] = []

    def __call__(self, progress: Progress) -> None:
        self.seen.append(progress.step)
        if progress.step == self.at:
            self.stop.set()


def run(tmp: Path, stop_at: int | None) -> TrainingOutcome:
    stop = threading.Event()
    ctx = TrainingContext(CheckpointManager(LocalStore(tmp), "job"), stop=stop,
                          on_progress=StopAt(stop, stop_at), options={"steps": str(STEPS)})
    return tiny_train.train(ctx)


def final_weights(tmp: Path) -> dict[str, torch.Tensor]:
    latest = CheckpointManager(LocalStore(tmp), "job").latest()
    assert latest is not None and latest.step == STEPS
    state: dict[str, torch.Tensor] = torch.load(io.BytesIO(latest.parts["model.pt"]),
                                                weights_only=True)
    return state


def test_resumed_twice_equals_uninterrupted_bit_for_bit(tmp_path: Path) -> None:
    done = run(tmp_path / "whole", None)
    assert done.completed and done.step == STEPS

    first = run(tmp_path / "pieces", 37)
    assert not first.completed and first.step == 37 and first.stopped_reason == "stop requested"
    assert first.checkpoint_uri is not None and first.checkpoint_uri.endswith("ckpt-000000000037")
    second = run(tmp_path / "pieces", 81)
    assert not second.completed and second.step == 81
    third = run(tmp_path / "pieces", None)
    assert third.completed and third.step == STEPS

    a, b = final_weights(tmp_path / "whole"), final_weights(tmp_path / "pieces")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    stopped_early = run(tmp_path / "other", 10)  # a sanity check that the test can fail:
    assert stopped_early.step == 10  # the weights after 10 steps differ from the final ones
    partial = CheckpointManager(LocalStore(tmp_path / "other"), "job").latest()
    assert partial is not None
    early = torch.load(io.BytesIO(partial.parts["model.pt"]), weights_only=True)
    assert not all(torch.equal(early[k], a[k]) for k in a)


def test_periodic_checkpoints_follow_the_clock(tmp_path: Path) -> None:
    now = [0.0]

    def clock() -> float:
        now[0] += 1.0  # one second per call (the harness reads it once a step)
        return now[0]

    ctx = TrainingContext(CheckpointManager(LocalStore(tmp_path), "job", keep=100),
                          checkpoint_every_s=10.0, clock=clock, options={"steps": "40"})
    outcome = tiny_train.train(ctx)
    assert outcome.completed
    steps = ctx.checkpoints.steps()
    assert steps[0] == 40 and len(steps) >= 3  # periodic ones plus the final one


def test_stop_marker_in_store_stops_at_a_step_boundary(tmp_path: Path) -> None:
    manager = CheckpointManager(LocalStore(tmp_path), "job")
    manager.request_stop("operator asked")
    ticks = iter(range(0, 10_000, 11))  # 11 s a call: the marker is checked every 10 s
    ctx = TrainingContext(manager, clock=lambda: float(next(ticks)), options={"steps": "50"})
    outcome = tiny_train.train(ctx)
    assert not outcome.completed
    assert outcome.stopped_reason == "stop marker in the checkpoint store"
    assert manager.latest().step == outcome.step  # type: ignore[union-attr]
