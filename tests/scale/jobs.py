"""Jobs and plans for the scale tier: short urgent training runs (tests.scale.quick_train) on
local compute."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from carbonshift.catalog import default_catalog
from carbonshift.job import JobSpec
from carbonshift.plan import FeasiblePlan
from carbonshift.planner import plan_jobs
from tests.conftest import make_series

# One region per cloud; both on the GB grid, so the bundled replay covers the monitor.
REGIONS = {"aws": ("aws:eu-west-2", "g5.xlarge"), "gcp": ("gcp:europe-west2", "g2-standard-4")}


def job(name: str, cloud: str, entrypoint: str = "tests.scale.quick_train:train",
        **fields: Any) -> JobSpec:
    region, instance_type = REGIONS[cloud]
    spec: dict[str, Any] = {"name": name, "urgent": True, "within": "2h",
                            "work": {"duration": "10m", "instance_type": instance_type},
                            "regions": [region], "entrypoint": entrypoint}
    return JobSpec.model_validate({**spec, **fields})


def plans_now(jobs: list[JobSpec], now: datetime | None = None) -> list[FeasiblePlan]:
    """Each job planned to start now (urgent, flat grid)."""
    now = now or datetime.now(UTC)
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    flat = make_series([250.0] * 48, start=start, step_s=3600, zone="GB")
    plans = plan_jobs(jobs, {region: flat for region, _ in REGIONS.values()}, now=now,
                      catalog=default_catalog())
    assert all(isinstance(p, FeasiblePlan) for p in plans), plans
    return plans  # type: ignore[return-value]


def training_config(tmp: Path, **fields: Any) -> dict[str, Any]:
    return {"checkpoint_store": str(tmp / "ckpt"), "compute_state_dir": str(tmp / "compute"),
            "options": {"steps": "10", "step_s": "0.2"}, **fields}


def run_parameters(spec: JobSpec, plan: FeasiblePlan, config: dict[str, Any]) -> dict[str, Any]:
    return {"job": spec.model_dump(mode="json", by_alias=True),
            "plan": plan.model_dump(mode="json"), "resume_from": None, "config": config}
