"""Training-run tasks. This release records each run against its plan; the checkpointing
trainer, the grid monitor and energy metering plug in behind the same flow."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from carbonshift.artifacts import artifact_key
from carbonshift.job import JobSpec
from carbonshift.plan import Plan


def run_record(job: JobSpec, plan: Plan, started: datetime, resume_from: str | None) -> str:
    c = plan.chosen
    if c is None:
        return f"# {job.name}\n\nNo feasible plan was passed: nothing to run.\n"
    late_s = (started - c.start).total_seconds()
    lines = [
        f"# {job.name}: training run",
        "",
        f"- Region: {c.region} on {c.instance_type}",
        f"- Planned start: {c.start:%Y-%m-%d %H:%M:%S} UTC; started {started:%Y-%m-%d %H:%M:%S} "
        f"UTC ({late_s:+.0f} s)",
        f"- Planned end: {c.end:%Y-%m-%d %H:%M} UTC",
        f"- Forecast over the run: {c.mean_g_per_kwh:.0f} g/kWh ({c.source})",
        f"- Expected: {c.energy_kwh:.2f} kWh, {c.emissions_kg:.2f} kg CO2, ${c.cost_usd:.2f}",
        f"- Resuming from: {resume_from or 'the start'}",
        f"- Entrypoint: {job.entrypoint or 'none given'}",
    ]
    return "\n".join(lines) + "\n"


@task(cache_policy=NO_CACHE)
def record_run(job: JobSpec, plan: Plan, resume_from: str | None) -> str:
    started = datetime.now(UTC)
    get_run_logger().info(
        "%s: started against plan for %s",
        job.name,
        plan.chosen.region if plan.chosen else "nothing",
    )
    create_markdown_artifact(
        run_record(job, plan, started, resume_from),
        key=artifact_key("run", job.name),
        description=f"training run of {job.name}",
    )
    return started.isoformat()
