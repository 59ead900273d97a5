"""Where a run's checkpoints live."""

from __future__ import annotations

from typing import Any

from carbonshift.checkpoint import CheckpointManager, manager_for, open_store


def checkpoints_for(
    store: str,
    job: str,
    run_id: str,
    resume_from: str | None,
    keep: int,
    *,
    aws_session: Any = None,
    gcp_credentials: Any = None,
) -> CheckpointManager:
    """A fresh run checkpoints under `<store>/<job>/<run id>` (a folder, s3:// or gs://); a
    resumed run continues in the folder its `resume_from` checkpoint URI names (so yesterday's
    finished run never counts). Whether a checkpoint must be there is the trainer's call
    (TrainingContext.resume_from)."""
    if resume_from:
        return manager_for(
            resume_from, keep=keep, aws_session=aws_session, gcp_credentials=gcp_credentials
        )
    opened, prefix = open_store(store, aws_session=aws_session, gcp_credentials=gcp_credentials)
    return CheckpointManager(opened, "/".join(p for p in (prefix, job, run_id) if p), keep=keep)
