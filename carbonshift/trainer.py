"""A checkpointing harness that a PyTorch training loop wraps around.

    harness = Harness(model, optimizer, scheduler, context=ctx, total_steps=n)
    harness.resume()                      # from the latest complete checkpoint, if any
    ...                                   # (with ctx.resume_from set: one must exist)
    for step in harness.steps():          # batch = data at `step`: the step is the data position
        ...                               # one optimisation step
    return harness.outcome

Checkpoints hold model, optimizer and scheduler state, the step (data position), the epoch and
the torch, numpy and Python RNG states. They are serialised on the training thread (a consistent
snapshot) and written to the store on a background thread. A stop (the context's event, SIGTERM
via `stop_on_sigterm`, or a stop marker in the store) checkpoints at the next step boundary.
"""

from __future__ import annotations

import io
import json
import random
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from carbonshift.training import Progress, TrainingContext, TrainingOutcome

MARKER_CHECK_S = 10.0  # how often the store's stop marker is looked at


class Harness:
    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any | None = None,
        *,
        context: TrainingContext,
        total_steps: int,
        steps_per_epoch: int | None = None,
        background: bool = True,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.ctx = context
        self.total_steps = total_steps
        self.steps_per_epoch = steps_per_epoch or total_steps
        self.step = 0
        self.outcome: TrainingOutcome | None = None
        self._last_checkpoint = context.clock()
        self._last_marker_check = context.clock()
        self._last_uri: str | None = None
        self._writer = ThreadPoolExecutor(max_workers=1) if background else None
        self._pending: Future[str] | None = None

    @property
    def part_names(self) -> tuple[str, ...]:
        """The parts every checkpoint of this harness holds, and needs to resume."""
        names = ("model.pt", "optimizer.pt", "rng.json")
        return (*names, "scheduler.pt") if self.scheduler is not None else names

    # -- resume ------------------------------------------------------------------------------

    def resume(self) -> int:
        """Load the latest complete checkpoint; returns the step to continue from."""
        found = self.ctx.checkpoints.resume_point(
            self.part_names,
            resume_from=self.ctx.resume_from,
            allow_fresh_start=self.ctx.allow_fresh_start,
        )
        if found is None:
            return 0
        self.model.load_state_dict(_load(found.parts["model.pt"]))
        self.optimizer.load_state_dict(_load(found.parts["optimizer.pt"]))
        if self.scheduler is not None:
            self.scheduler.load_state_dict(_load(found.parts["scheduler.pt"]))
        _set_rng(json.loads(found.parts["rng.json"]))
        self.step = found.step
        self._last_uri = found.uri
        return self.step

    # -- the loop ----------------------------------------------------------------------------

    def steps(self) -> Iterator[int]:
        try:
            for step in range(self.step, self.total_steps):
                yield step
                self.step = step + 1
                if self.ctx.on_progress is not None:
                    self.ctx.on_progress(Progress(self.step, self.total_steps))
                reason = self._stop_reason()
                if reason is not None and self.step < self.total_steps:
                    self.checkpoint()
                    self._finish(completed=False, reason=reason)
                    return
                if self.ctx.clock() - self._last_checkpoint >= self.ctx.checkpoint_every_s:
                    self.checkpoint()
            self.checkpoint()
            self._finish(completed=True, reason=None)
        finally:
            self.flush()

    def checkpoint(self) -> None:
        """Snapshot now (on this thread), write in the background."""
        parts = {
            "model.pt": _dump(self.model.state_dict()),
            "optimizer.pt": _dump(self.optimizer.state_dict()),
            "rng.json": json.dumps(_get_rng()).encode(),
        }
        if self.scheduler is not None:
            parts["scheduler.pt"] = _dump(self.scheduler.state_dict())
        meta = {
            "step": self.step,
            "epoch": self.step // self.steps_per_epoch,
            "data_position": self.step,
            "total_steps": self.total_steps,
        }
        self.flush()  # one write at a time, in order
        save, required = self.ctx.checkpoints.save, self.part_names
        if self._writer is None:
            self._last_uri = save(self.step, parts, meta, required)
        else:
            self._pending = self._writer.submit(save, self.step, parts, meta, required)
        self._last_checkpoint = self.ctx.clock()

    def flush(self) -> None:
        """Wait for the background write, if any; its errors surface here."""
        if self._pending is not None:
            self._last_uri = self._pending.result()
            self._pending = None

    def close(self) -> None:
        """Wait for the last write and let go of the run folder (its writer lock)."""
        try:
            self.flush()
        finally:
            if self._writer is not None:
                self._writer.shutdown(wait=True)
            self.ctx.checkpoints.close()

    def stop_on_sigterm(self) -> None:
        """SIGTERM sets the stop event (main thread only, as Python requires)."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: self.ctx.stop.set())

    def _stop_reason(self) -> str | None:
        if self.ctx.stop.is_set():
            return "stop requested"
        now = self.ctx.clock()
        if now - self._last_marker_check >= MARKER_CHECK_S:
            self._last_marker_check = now
            if self.ctx.checkpoints.stop_requested():
                self.ctx.stop.set()
                return "stop marker in the checkpoint store"
        return None

    def _finish(self, completed: bool, reason: str | None) -> None:
        self.flush()
        self.outcome = TrainingOutcome(
            completed, self.step, self.total_steps, self._last_uri, reason
        )


def _dump(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _load(data: bytes) -> Any:
    return torch.load(io.BytesIO(data), weights_only=True)


def _get_rng() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    version, state, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state().tolist(),
        "numpy": [kind, np.asarray(keys).tolist(), pos, has_gauss, cached],
        "python": [version, list(state), gauss],
    }


def _set_rng(saved: dict[str, Any]) -> None:
    torch.set_rng_state(torch.tensor(saved["torch"], dtype=torch.uint8))
    kind, keys, pos, has_gauss, cached = saved["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, state, gauss = saved["python"]
    random.setstate((version, tuple(state), gauss))
