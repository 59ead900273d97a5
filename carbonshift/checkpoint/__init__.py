"""Checkpoints on object storage: parts first, a manifest with sizes and sha256 last."""

from carbonshift.checkpoint.manager import (
    Checkpoint,
    CheckpointError,
    CheckpointManager,
    NoCheckpointToResume,
    WriterConflict,
    manager_for,
)
from carbonshift.checkpoint.store import LocalStore, ObjectStore, WriterBusy, open_store

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "CheckpointManager",
    "LocalStore",
    "NoCheckpointToResume",
    "ObjectStore",
    "WriterBusy",
    "WriterConflict",
    "manager_for",
    "open_store",
]
