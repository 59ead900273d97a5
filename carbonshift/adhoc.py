"""One training without a deployment (`carbonshift train`): the job from a job file, restricted
to a region and instance type when given, planned to start now; and `carbonshift reap`'s
request. The CLI validates these here; the project's flows run them (the core never imports
Prefect)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from carbonshift.catalog import Catalog
from carbonshift.config import TrainingConfig
from carbonshift.job import JobSpec, WorkOnInstance, load_jobs


class TrainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    jobs: str = Field(description="the job file")
    job: str = Field(description="the job's name in it")
    compute: Literal["local", "cloud"] = "local"
    region: str | None = Field(default=None, description="provider:region, as in job files")
    instance_type: str | None = None
    store: str | None = Field(default=None, description="checkpoint store URI")
    config: str | None = Field(
        default=None, description="a YAML/JSON file of training settings (TrainingConfig)"
    )
    json_output: bool = False


class ReapRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    regions: list[str] = Field(min_length=1)
    stale_after_s: float = Field(default=900.0, gt=0)
    compute: Literal["local", "cloud"] = Field(
        default="cloud", description="cloud: the regions' clouds; local: this machine's state"
    )
    config: str | None = Field(
        default=None, description="the training settings the runs used (compute.aws / .gcp)"
    )
    json_output: bool = False


def adhoc_job(request: TrainRequest, catalog: Catalog) -> JobSpec:
    """The named job, urgent (it starts now), limited to `region` and `instance_type`; errors
    name the option and what to give instead."""
    queue = load_jobs(Path(request.jobs))
    spec = next((j for j in queue.jobs if j.name == request.job), None)
    if spec is None:
        bad = next((e for e in queue.errors if e.job == request.job), None)
        if bad is not None:
            raise ValueError(f"--job {request.job}: {bad}")
        names = ", ".join(j.name for j in queue.jobs) or "none"
        raise ValueError(f"--job: no job {request.job!r} in {request.jobs} (jobs: {names})")
    update: dict[str, object] = {"urgent": True, "earliest_start": None}
    # The flags narrow what the job file allows, never widen it (data residency, budgets).
    if request.region is not None:
        region = catalog.region(request.region)  # raises, naming the known regions
        allowed = [catalog.region(r).key for r in spec.regions]
        if (allowed and region.key not in allowed) or region.provider not in spec.providers:
            raise ValueError(
                f"--region {region.key}: job {spec.name!r} allows only "
                f"{', '.join(allowed) or ', '.join(spec.providers)}; give one of those, or add "
                "the region to the job file"
            )
        update["regions"] = [region.key]
        update["providers"] = [region.provider]
    if request.instance_type is not None:
        itype = catalog.instance_type(request.instance_type)
        if spec.instance_types and itype.name not in spec.instance_types:
            raise ValueError(
                f"--instance-type {itype.name}: job {spec.name!r} allows only "
                f"{', '.join(spec.instance_types)}; give one of those, or add it to the job file"
            )
        update["instance_types"] = [itype.name]
        if isinstance(spec.work, WorkOnInstance) and spec.work.instance_type != itype.name:
            raise ValueError(
                f"--instance-type {itype.name}: job {spec.name!r} is sized for "
                f"{spec.work.instance_type} (work.duration); give that type, or size the job in "
                "gpu_hours so that other types can run it"
            )
    return spec.model_copy(update=update)


def training_config(request: TrainRequest | ReapRequest) -> TrainingConfig:
    """The runs' configuration: `--config` (YAML or JSON of TrainingConfig), then the flags.
    For `train`, a cloud run's store must be one the instance can reach."""
    raw: dict[str, Any] = {}
    if request.config is not None:
        try:
            loaded = yaml.safe_load(Path(request.config).read_text())
        except (OSError, yaml.YAMLError) as e:
            raise ValueError(f"--config {request.config}: {e}") from None
        if not isinstance(loaded, dict):
            raise ValueError(f"--config {request.config}: expected a mapping of settings")
        raw = loaded
    if isinstance(request, TrainRequest) and request.store is not None:
        raw["checkpoint_store"] = request.store
    raw["compute"] = {**(raw.get("compute") or {}), "kind": request.compute}
    try:
        config = TrainingConfig.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        source = f"--config {request.config}" if request.config else "training settings"
        raise ValueError(f"{source}: {loc + ': ' if loc else ''}{message}") from None
    if isinstance(request, TrainRequest):
        config.check_reachable_store()
    return config
