"""Where a run's checkpoints live."""

from __future__ import annotations

from pathlib import Path

from carbonshift.checkpoint import CheckpointManager, LocalStore, manager_for


def checkpoints_for(
    store: str, job: str, run_id: str, resume_from: str | None, keep: int
) -> CheckpointManager:
    """A fresh run checkpoints under `<store>/<job>/<run id>`; a resumed run continues in the
    folder its `resume_from` checkpoint URI names (so yesterday's finished run never counts).
    Whether a checkpoint must be there is the trainer's call (TrainingContext.resume_from)."""
    if resume_from:
        return manager_for(resume_from, keep=keep)
    root = Path(store.removeprefix("file://")) / job
    return CheckpointManager(LocalStore(root), run_id, keep=keep)
