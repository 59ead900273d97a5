"""The rest of a stopped run's work, as a job to plan again before the same deadline."""

from __future__ import annotations

from datetime import datetime

from carbonshift.catalog import Catalog
from carbonshift.job import JobSpec, WorkGpuHours, WorkOnInstance
from carbonshift.run.placement import Placement
from carbonshift.training import TrainingOutcome


class NothingLeft(ValueError):
    """The run finished its work: there is no rest to plan."""


def remaining_job(
    job: JobSpec,
    placement: Placement,
    outcome: TrainingOutcome,
    now: datetime,
    catalog: Catalog,
    started_step: int = 0,
) -> JobSpec:
    """The rest of the work, from now to the same deadline, plus one resume overhead. A run that
    resumed at `started_step` was given only the work from there on (its job is already a rest),
    so the share left is counted over those steps, not over the whole training."""
    span = outcome.total_steps - started_step
    left = (outcome.total_steps - outcome.step) / span if span > 0 else 0.0
    if left <= 0:
        raise NothingLeft(
            f"job {job.name!r}: step {outcome.step} of {outcome.total_steps} is the end of "
            "the work: nothing left to re-plan"
        )
    work: WorkOnInstance | WorkGpuHours
    if isinstance(job.work, WorkOnInstance):
        work = WorkOnInstance.model_validate(
            {
                "duration": job.work.duration_s * left + job.resume_overhead_s,
                "instance_type": job.work.instance_type,
            }
        )
    else:
        gpu = catalog.gpu(job.work.reference_gpu)
        itype = catalog.instance_type(placement.slot.instance_type)
        extra = job.resume_overhead_s / 3600 * itype.throughput / gpu.throughput_factor
        work = WorkGpuHours(
            gpu_hours=job.work.gpu_hours * left + extra, reference_gpu=job.work.reference_gpu
        )
    return job.model_copy(
        update={
            "work": work,
            "earliest_start": now,
            "deadline": placement.deadline,
            "within_s": None,
            "urgent": False,
        }
    )
