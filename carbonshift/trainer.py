"""A checkpointing harness that a PyTorch training loop wraps around.

    harness = Harness(model, optimizer, scheduler, context=ctx, total_steps=n)
    harness.resume()                      # from the latest complete checkpoint, if any
    ...                                   # (with ctx.resume_from set: one must exist)
    for step in harness.steps():          # batch = data at `step`: the step is the data position
        ...                               # one optimisation step
    return harness.outcome

Checkpoints hold model, optimizer and scheduler state, the step (data position), the epoch and
the torch, numpy and Python RNG states. They are taken CheckFreq-style: the training thread
copies the state (a snapshot into buffers reused between checkpoints) and a writer thread
serialises and writes it, one write at a time; a checkpoint that finds the previous write still
going waits for it. The training thread's time blocked per checkpoint (that wait and the copy) is
in `stalls_s`, each finished write in `writes`. A failed write is raised on the training thread
at the next checkpoint, or at the end. A stop (the context's event, SIGTERM via
`stop_on_sigterm`, or a stop marker in the store) checkpoints at the next step boundary; the
last checkpoint is complete before `steps()` ends.
"""

from __future__ import annotations

import io
import json
import logging
import random
import signal
import threading
import time
from collections.abc import Generator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from carbonshift.checkpoint.snapshot import StateCopier
from carbonshift.training import Progress, TrainingContext, TrainingOutcome

log = logging.getLogger("carbonshift.trainer")

MARKER_CHECK_S = 10.0  # how often the store's stop marker is looked at


@dataclass(frozen=True)
class CheckpointWrite:
    """One checkpoint as the writer thread wrote it."""

    step: int
    bytes: int
    serialise_s: float
    write_s: float  # the store's save: parts, manifest, prune


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
        self.stalls_s: list[float] = []  # per checkpoint: the training thread blocked
        self.writes: list[CheckpointWrite] = []  # per finished write, in order
        self.final_wait_s = 0.0  # the training thread waiting for the last write at the end
        self._last_checkpoint = context.clock()
        self._last_marker_check = self._last_checkpoint
        self._last_uri: str | None = None
        self._checkpointed_step: int | None = None  # the step of the newest checkpoint
        self._writer = ThreadPoolExecutor(max_workers=1) if background else None
        self._copier = StateCopier()
        self._pending: Future[tuple[str, CheckpointWrite]] | None = None
        self._failure: BaseException | None = None  # a write that failed, not yet raised

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
        self._checkpointed_step = found.step
        return self.step

    # -- the loop ----------------------------------------------------------------------------

    def steps(self) -> Generator[int, None, None]:
        # Per step: one clock reading, one event check, the progress call. Everything else
        # (the marker in the store, checkpoints) waits for its interval.
        ctx, total = self.ctx, self.total_steps
        clock, stop, on_progress = ctx.clock, ctx.stop, ctx.on_progress
        try:
            for step in range(self.step, total):
                yield step
                self.step = step + 1
                if on_progress is not None:
                    on_progress(Progress(self.step, total))
                now = clock()
                reason = "stop requested" if stop.is_set() else self._marker_stop(now)
                if reason is not None and self.step < total:
                    self.checkpoint()
                    self._finish(completed=False, reason=reason)
                    return
                if self.step < total and now - self._last_checkpoint >= ctx.checkpoint_every_s:
                    self.checkpoint()
            if self._checkpointed_step != self.step:  # none yet of the last step: written once
                self.checkpoint()
            self._finish(completed=True, reason=None)
        except BaseException:
            # The loop was left (a training error, a break, a failed callback): wait for the
            # write in flight, and keep its failure, if any, for close() to raise.
            self._wait(keep_failure=True)
            raise

    def checkpoint(self) -> None:
        """Snapshot now (on this thread), serialise and write in the background."""
        started = time.perf_counter()
        self._wait()  # one write at a time, in order; a failed one is raised here
        step, meta = self.step, self._meta()
        if self._writer is None:
            self._record(self._persist(step, {**self._live_state(), "rng.json": _get_rng()}, meta))
        else:
            state = {**self._copier.copy(self._live_state()), "rng.json": _get_rng()}
            self._pending = self._writer.submit(self._persist, step, state, meta)
        self._checkpointed_step = step
        self.stalls_s.append(time.perf_counter() - started)
        self._last_checkpoint = self.ctx.clock()

    def flush(self) -> None:
        """Wait for the background write, if any; its error (or an earlier one) surfaces here."""
        self._wait()

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

    # -- inside ------------------------------------------------------------------------------

    def _marker_stop(self, now: float) -> str | None:
        if now - self._last_marker_check < MARKER_CHECK_S:
            return None
        self._last_marker_check = now
        if self.ctx.checkpoints.stop_requested():
            self.ctx.stop.set()
            return "stop marker in the checkpoint store"
        return None

    def _live_state(self) -> dict[str, Any]:
        state = {
            "model.pt": self.model.state_dict(),
            "optimizer.pt": self.optimizer.state_dict(),
        }
        if self.scheduler is not None:
            state["scheduler.pt"] = self.scheduler.state_dict()
        return state

    def _meta(self) -> dict[str, int]:
        return {
            "step": self.step,
            "epoch": self.step // self.steps_per_epoch,
            "data_position": self.step,
            "total_steps": self.total_steps,
        }

    def _persist(
        self, step: int, state: dict[str, Any], meta: dict[str, int]
    ) -> tuple[str, CheckpointWrite]:
        """Serialise and write (on the writer thread, unless there is none)."""
        started = time.perf_counter()
        parts = {
            name: _rng_json(value) if name == "rng.json" else _dump(value)
            for name, value in state.items()
        }
        serialised = time.perf_counter()
        uri = self.ctx.checkpoints.save(step, parts, meta, self.part_names)
        size = sum(len(data) for data in parts.values())
        done = time.perf_counter()
        return uri, CheckpointWrite(step, size, serialised - started, done - serialised)

    def _record(self, written: tuple[str, CheckpointWrite]) -> None:
        self._last_uri, record = written
        self.writes.append(record)

    def _wait(self, keep_failure: bool = False) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            try:
                self._record(pending.result())
            except BaseException as e:
                if not keep_failure:
                    raise
                log.error("checkpoint write failed: %s", e)
                self._failure = e
        if self._failure is not None and not keep_failure:
            failure, self._failure = self._failure, None
            raise failure

    def _finish(self, completed: bool, reason: str | None) -> None:
        started = time.perf_counter()
        self._wait()
        self.final_wait_s = time.perf_counter() - started
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
    """The generators' states, as copies (turned into JSON later, off the training thread)."""
    return {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(legacy=True),
        "python": random.getstate(),
    }


def _rng_json(saved: dict[str, Any]) -> bytes:
    kind, keys, pos, has_gauss, cached = saved["numpy"]
    version, state, gauss = saved["python"]
    return json.dumps(
        {
            "torch": saved["torch"].tolist(),
            "numpy": [kind, np.asarray(keys).tolist(), pos, has_gauss, cached],
            "python": [version, list(state), gauss],
        }
    ).encode()


def _set_rng(saved: dict[str, Any]) -> None:
    torch.set_rng_state(torch.tensor(saved["torch"], dtype=torch.uint8))
    kind, keys, pos, has_gauss, cached = saved["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, state, gauss = saved["python"]
    random.setstate((version, tuple(state), gauss))
