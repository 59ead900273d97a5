"""Checkpoints on object storage (a folder, S3 or GCS): parts first, a manifest with sizes and
sha256 last. The cloud stores are `carbonshift.checkpoint.s3.S3Store` and
`carbonshift.checkpoint.gcs.GcsStore` (imported on use: their SDKs load only then)."""

from carbonshift.checkpoint.manager import (
    Checkpoint,
    CheckpointError,
    CheckpointManager,
    NoCheckpointToResume,
    WriterConflict,
    manager_for,
    takeover_wait_s,
)
from carbonshift.checkpoint.store import LocalStore, ObjectStore, WriterBusy, open_store
from carbonshift.checkpoint.uri import StoreUri, parse_store_uri

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "CheckpointManager",
    "LocalStore",
    "NoCheckpointToResume",
    "ObjectStore",
    "StoreUri",
    "WriterBusy",
    "WriterConflict",
    "manager_for",
    "takeover_wait_s",
    "open_store",
    "parse_store_uri",
]
