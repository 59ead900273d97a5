"""Checkpoints on object storage: parts first, a manifest with sizes and sha256 last."""

from carbonshift.checkpoint.manager import Checkpoint, CheckpointError, CheckpointManager
from carbonshift.checkpoint.store import LocalStore, ObjectStore, open_store

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "CheckpointManager",
    "LocalStore",
    "ObjectStore",
    "open_store",
]
