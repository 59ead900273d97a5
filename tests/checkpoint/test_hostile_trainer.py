"""The harness's background checkpoints against the unlucky: a writer that fails, training that
changes the state while the writer is still serialising it, a slow last write, a kill -9 while
writing. Threads meet on events; nothing sleeps."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections import OrderedDict
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import pytest
import torch

from carbonshift.checkpoint import CheckpointManager, LocalStore
from carbonshift.examples import tiny_train
from carbonshift.trainer import Harness
from carbonshift.training import Progress, TrainingContext

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 60.0  # a bound on waiting for another thread, so that a bug fails instead of hanging


class StepClock:
    """Reads the step the trainer last reported: `checkpoint_every_s=5` means every 5 steps,
    however often the harness reads the clock."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def on_progress(self, progress: Progress) -> None:
        self.now = float(progress.step)


class FailingSave(CheckpointManager):
    """Fails the save of the steps in `fail_at`, as a full disk would; counts every save."""

    def __init__(self, root: Path, fail_at: Collection[int]) -> None:
        super().__init__(LocalStore(root), "run", keep=100)
        self.fail_at = set(fail_at)
        self.saved: list[int] = []

    def save(
        self,
        step: int,
        parts: Mapping[str, bytes],
        meta: Mapping[str, Any],
        required: Collection[str] | None = None,
    ) -> str:
        self.saved.append(step)
        if step in self.fail_at:
            raise OSError(28, f"No space left on device (step {step})")
        return super().save(step, parts, meta, required)


def harness_for(manager: CheckpointManager, clock: StepClock, steps: int,
                **model_kw: Any) -> tuple[Harness, Any]:
    step, model, optimizer, scheduler, _ = tiny_train.make_step(0)
    if model_kw.get("model") is not None:
        model = model_kw["model"]
    ctx = TrainingContext(manager, on_progress=clock.on_progress, checkpoint_every_s=5.0,
                          clock=clock)
    return Harness(model, optimizer, scheduler, context=ctx, total_steps=steps), step


# -- a failing writer ------------------------------------------------------------------------

def test_a_failed_background_write_is_raised_at_the_next_checkpoint(tmp_path: Path) -> None:
    manager = FailingSave(tmp_path, fail_at={5})
    clock = StepClock()
    harness, step = harness_for(manager, clock, steps=40)
    with pytest.raises(OSError, match=r"No space left on device \(step 5\)"):
        for k in harness.steps():
            step(k)
    assert harness.step == 10  # the next checkpoint, not later, not never
    assert manager.saved == [5]  # and the failure stopped that checkpoint's write
    assert harness.outcome is None
    harness.close()  # raised once: nothing left to raise
    assert manager.latest() is None


def test_a_failed_last_write_is_raised_before_the_trainer_returns(tmp_path: Path) -> None:
    manager = FailingSave(tmp_path, fail_at={12})
    harness, step = harness_for(manager, StepClock(), steps=12)
    with pytest.raises(OSError, match=r"\(step 12\)"):
        for k in harness.steps():
            step(k)
    assert harness.outcome is None  # never reported as completed
    assert manager.latest() is not None and manager.latest().step == 10  # type: ignore[union-attr]
    harness.close()


def test_a_failed_write_left_behind_by_a_break_is_raised_by_close(tmp_path: Path) -> None:
    manager = FailingSave(tmp_path, fail_at={5})
    harness, step = harness_for(manager, StepClock(), steps=40)
    steps = harness.steps()
    for k in steps:
        step(k)
        if k == 6:  # the write of step 5 was started at the end of step 5
            break
    steps.close()
    with pytest.raises(OSError, match=r"\(step 5\)"):
        harness.close()


# -- the snapshot is the state at its step ---------------------------------------------------

class Gate:
    """An object in the model's state whose pickling waits: serialisation (on the writer
    thread) stops until the test lets it go. It unpickles as an empty OrderedDict."""

    def __init__(self, serialising: threading.Event, release: threading.Event) -> None:
        self.serialising, self.release = serialising, release

    def __deepcopy__(self, memo: dict[int, Any]) -> Gate:
        return self  # the events are shared: a copy must gate as the original does

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        if threading.current_thread() is not threading.main_thread():
            self.serialising.set()
            assert self.release.wait(WAIT_S), "the test never released the writer"
        return (OrderedDict, ())


class Gated(torch.nn.Module):
    """tiny_train's model behind a module whose extra state comes first in its state_dict."""

    def __init__(self, inner: torch.nn.Module, gate: Gate) -> None:
        super().__init__()
        self.gate = gate
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.inner(x)
        return out

    def get_extra_state(self) -> Any:
        return self.gate

    def set_extra_state(self, state: Any) -> None:
        pass


def test_a_checkpoint_holds_the_state_of_its_step_while_training_changes_it(
    tmp_path: Path,
) -> None:
    serialising, release = threading.Event(), threading.Event()
    step, model, optimizer, scheduler, _ = tiny_train.make_step(0)
    gated = Gated(model, Gate(serialising, release))
    clock = StepClock()
    expected: dict[str, torch.Tensor] = {}
    expected_moments: list[torch.Tensor] = []

    def on_progress(progress: Progress) -> None:
        clock.on_progress(progress)
        if progress.step == 5:  # the state the checkpoint at 5 must hold
            expected.update({k: v.clone() for k, v in model.state_dict().items()})
            expected_moments.extend(s["exp_avg"].clone() for s in optimizer.state.values())
        if progress.step == 6:
            # The writer is serialising step 5 (held inside the pickling, before the tensors)
            # while this thread wrecks the live state in place; then it may go on.
            assert serialising.wait(WAIT_S), "step 5 was not being written in the background"
            with torch.no_grad():
                for p in model.parameters():
                    p.fill_(1234.0)
                for s in optimizer.state.values():
                    s["exp_avg"].fill_(-1.0)
            release.set()

    manager = CheckpointManager(LocalStore(tmp_path), "run", keep=100)
    ctx = TrainingContext(manager, on_progress=on_progress, checkpoint_every_s=5.0, clock=clock)
    harness = Harness(gated, optimizer, scheduler, context=ctx, total_steps=8)
    for k in harness.steps():
        step(k)
    harness.close()

    saved = manager.load(5)
    weights = torch.load(io.BytesIO(saved.parts["model.pt"]), weights_only=True)
    moments = torch.load(io.BytesIO(saved.parts["optimizer.pt"]), weights_only=True)["state"]
    assert set(weights) == {"_extra_state", *(f"inner.{k}" for k in expected)}
    for name, value in expected.items():
        assert torch.equal(weights[f"inner.{name}"], value), name
        assert not torch.equal(weights[f"inner.{name}"], torch.full_like(value, 1234.0))
    assert len(moments) == len(expected_moments)
    for i, value in enumerate(expected_moments):
        assert torch.equal(moments[i]["exp_avg"], value), i


# -- the last checkpoint ---------------------------------------------------------------------

class SlowLastSave(CheckpointManager):
    """The save of `last` waits until another thread saw it start and let it go."""

    def __init__(self, root: Path, last: int) -> None:
        super().__init__(LocalStore(root), "run", keep=100)
        self.last = last
        self.writing, self.release = threading.Event(), threading.Event()
        self.saved: list[int] = []

    def save(
        self,
        step: int,
        parts: Mapping[str, bytes],
        meta: Mapping[str, Any],
        required: Collection[str] | None = None,
    ) -> str:
        self.saved.append(step)
        if step == self.last:
            self.writing.set()
            assert self.release.wait(WAIT_S)
        return super().save(step, parts, meta, required)


def test_the_last_checkpoint_is_written_once_and_complete_when_steps_end(tmp_path: Path) -> None:
    manager = SlowLastSave(tmp_path, last=15)
    harness, step = harness_for(manager, StepClock(), steps=15)

    def let_go() -> None:
        manager.writing.wait(WAIT_S)
        manager.release.set()

    helper = threading.Thread(target=let_go)
    helper.start()
    for k in harness.steps():
        step(k)
    # steps() has ended: the last write is done, and its result collected on this thread.
    assert harness.outcome is not None and harness.outcome.completed
    assert harness.outcome.checkpoint_uri == manager.uri_of(15)
    assert [w.step for w in harness.writes] == [5, 10, 15]
    latest = manager.latest(harness.part_names)
    assert latest is not None and latest.step == 15
    helper.join()
    harness.close()
    # Written once each: the interval falls due at step 15 too, and the end writes 15 itself.
    assert manager.saved == [5, 10, 15]
    assert len(harness.stalls_s) == 3 and all(s >= 0 for s in harness.stalls_s)


def test_a_resumed_finished_run_does_not_write_its_last_checkpoint_again(
    tmp_path: Path,
) -> None:
    first = FailingSave(tmp_path, fail_at=())
    harness, step = harness_for(first, StepClock(), steps=7)
    for k in harness.steps():
        step(k)
    harness.close()
    again = FailingSave(tmp_path, fail_at=())
    harness, step = harness_for(again, StepClock(), steps=7)
    assert harness.resume() == 7
    assert list(harness.steps()) == []
    harness.close()
    assert harness.outcome is not None and harness.outcome.completed
    assert again.saved == [] and first.saved == [5, 7]


# -- kill -9 while writing -------------------------------------------------------------------

TRAINER = textwrap.dedent("""
    import sys
    from carbonshift.checkpoint import CheckpointManager, LocalStore
    from carbonshift.examples import tiny_train
    from carbonshift.training import TrainingContext

    def on_progress(p):
        if p.step == 40:
            print("training", flush=True)

    # A checkpoint at every step: a write is nearly always in flight when the kill lands.
    ctx = TrainingContext(CheckpointManager(LocalStore(sys.argv[1]), "run"),
                          on_progress=on_progress, checkpoint_every_s=0.0,
                          options={"steps": "100000"})
    tiny_train.train(ctx)
""")


def test_kill_9_while_writing_resumes_from_a_loadable_checkpoint(tmp_path: Path) -> None:
    victim = subprocess.Popen([sys.executable, "-c", TRAINER, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    assert victim.stdout is not None and victim.stdout.readline().strip() == "training"
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate()

    manager = CheckpointManager(LocalStore(tmp_path), "run")
    found = manager.latest(("model.pt", "optimizer.pt", "rng.json", "scheduler.pt"))
    assert found is not None and found.step >= 38  # 38 was written before 39 was taken
    steps = found.step + 20
    seen: list[int] = []
    ctx = TrainingContext(manager, on_progress=lambda p: seen.append(p.step),
                          options={"steps": str(steps)})
    outcome = tiny_train.train(ctx)
    assert outcome.completed and seen[0] == found.step + 1
    assert list(tmp_path.rglob(".*.tmp")) == []  # the dead writer's debris is swept

    # The resumed run ends where an uninterrupted one of the same length does, bit for bit.
    whole = TrainingContext(CheckpointManager(LocalStore(tmp_path / "whole"), "run"),
                            options={"steps": str(steps)})
    assert tiny_train.train(whole).completed
    a = torch.load(io.BytesIO(manager.load(steps).parts["model.pt"]), weights_only=True)
    b = torch.load(io.BytesIO(whole.checkpoints.load(steps).parts["model.pt"]),
                   weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
