"""What a training entrypoint receives and returns: plain Python, no framework."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from carbonshift.checkpoint import CheckpointManager


@dataclass(frozen=True)
class Progress:
    step: int
    total_steps: int

    @property
    def fraction(self) -> float:
        return self.step / self.total_steps if self.total_steps else 1.0


@dataclass(frozen=True)
class TrainingOutcome:
    """How a training call ended: finished, or stopped cleanly at a checkpoint."""

    completed: bool
    step: int
    total_steps: int
    checkpoint_uri: str | None
    stopped_reason: str | None = None

    @property
    def fraction_done(self) -> float:
        return self.step / self.total_steps if self.total_steps else 1.0


@dataclass
class TrainingContext:
    """Handed to a `module:function` entrypoint: where to checkpoint, when to stop."""

    checkpoints: CheckpointManager
    stop: threading.Event = field(default_factory=threading.Event)
    on_progress: Callable[[Progress], None] | None = None
    checkpoint_every_s: float = 1800.0
    clock: Callable[[], float] = time.monotonic
    options: dict[str, str] = field(default_factory=dict)
    # Where this run was told to resume from. When set, finding no valid checkpoint there is an
    # error (NoCheckpointToResume) unless `allow_fresh_start`: then it starts at step 0.
    resume_from: str | None = None
    allow_fresh_start: bool = False
