"""Planning tasks: load the queue, fetch forecasts per zone concurrently, plan, publish."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_image_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from carbonshift.artifacts import (
    PER_JOB_ARTIFACTS_UP_TO,
    PLAN_EXPLANATIONS_KEY,
    PLAN_TABLE_KEY,
    Scheduled,
    alternatives,
    artifact_key,
    placed,
    plan_markdown,
    plan_rows,
    plans_markdown,
    svg_data_url,
)
from carbonshift.catalog import PriceQuote, Region, default_catalog
from carbonshift.charts import plan_chart_svg
from carbonshift.config import ForecastConfig
from carbonshift.job import JobSpec, JobSpecError, load_jobs, parse_jobs, resolve
from carbonshift.plan import Plan
from carbonshift.planner import plan_jobs, refused
from carbonshift.providers import Served
from carbonshift.providers.chain import zone_groups
from carbonshift.series import IntensitySeries
from carbonshift.spot_pricing import SpotPricing, fetch_spot_quotes, spot_candidates
from tasks.forecasts import fetch_forecast


@dataclass(frozen=True)
class Queue:
    jobs: list[JobSpec]
    errors: list[JobSpecError]
    unreadable: str | None = None  # why the queue file could not be read (its jobs are lost)


def given_jobs(jobs: Sequence[object]) -> tuple[list[JobSpec], list[JobSpecError]]:
    """The `jobs` parameter: specs pass, anything else is validated here, so that a bad job is
    refused with its name (or `jobs[i]`), field and fix, and the others are kept."""
    found: list[JobSpec] = []
    errors: list[JobSpecError] = []
    for i, item in enumerate(jobs):
        if isinstance(item, JobSpec):
            found.append(item)
            continue
        parsed = parse_jobs([item], f"jobs[{i}]")
        found += parsed.jobs
        for error in parsed.errors:
            if error.job == "#0":  # no usable name: say where it is in the parameter
                message = str(error).removeprefix(f"job {error.job!r}: {error.field}: ")
                error = JobSpecError(f"jobs[{i}]", error.field, message)
            errors.append(error)
    return found, errors


@task(cache_policy=NO_CACHE)
def load_queue(queue_file: str | None, jobs: Sequence[object] | None) -> Queue:
    """The queue file's jobs and the given ones; a bad job is reported, the others kept."""
    logger = get_run_logger()
    found: list[JobSpec] = []
    errors: list[JobSpecError] = []
    unreadable = None
    if queue_file:
        try:
            parsed = load_jobs(Path(queue_file))
        except ValueError as e:  # missing, not UTF-8, not YAML: one line naming the file
            unreadable = f"queue_file: {e}"
            reason = str(e).removeprefix(f"{Path(queue_file)}: ")
            errors.append(JobSpecError(queue_file, "queue_file", reason))
        else:
            found += parsed.jobs
            errors += parsed.errors
    names = {j.name for j in found}
    given, refused = given_jobs(jobs or [])
    errors += refused
    for job in given:
        if job.name in names:
            errors.append(JobSpecError(job.name, "name", "given twice: rename one"))
            continue
        names.add(job.name)
        found.append(job)
    for error in errors:
        logger.error("%s", error)
    logger.info("%d jobs to plan, %d rejected", len(found), len(errors))
    return Queue(found, errors, unreadable)


def regions_and_horizon(jobs: list[JobSpec], now: datetime) -> tuple[list[Region], datetime]:
    """Every candidate region of the plannable jobs, and the latest deadline among them."""
    catalog = default_catalog()
    seen: dict[str, Region] = {}
    latest = now
    for job in jobs:
        try:
            resolved = resolve(job, catalog, now)
        except JobSpecError:
            continue  # plan_queue reports it
        latest = max(latest, datetime.fromtimestamp(resolved.deadline_s, now.tzinfo))
        for c in resolved.candidates:
            seen.setdefault(c.region.key, c.region)
    return list(seen.values()), latest


def fetch_forecasts(
    jobs: list[JobSpec], now: datetime, config: ForecastConfig
) -> dict[str, Served]:
    """One forecast task per zone, all submitted at once; results shared by the zone's regions."""
    regions, deadline = regions_and_horizon(jobs, now)
    groups = zone_groups(regions)
    end = deadline + timedelta(hours=1)
    futures = {key: fetch_forecast.submit(key, now, end, config) for key in groups}
    out: dict[str, Served] = {}
    for key, future in futures.items():
        served = future.result()
        if served is not None:
            for region in groups[key]:
                out[region.key] = served
    return out


@task(cache_policy=NO_CACHE)
def fetch_spot_prices(
    jobs: list[JobSpec], now: datetime, pricing: SpotPricing | None
) -> list[PriceQuote]:
    """AWS's spot prices for the interruptible jobs' AWS candidates, when asked for; a region
    without one keeps the catalog's (the plan labels each price with where it came from)."""
    logger = get_run_logger()
    if pricing is None or not pricing.enabled:
        return []
    catalog = default_catalog()
    wanted = spot_candidates(jobs, catalog, now)
    fetched = fetch_spot_quotes(wanted, now=now, max_age_s=pricing.max_age_s)
    for why in fetched.missing.values():
        logger.warning("%s; the catalog's spot price stays there", why)
    if any(j.interruptible and "gcp" in j.providers for j in jobs):
        logger.info("GCP spot prices are the catalog's: no GCP price API is asked")
    logger.info("%d spot prices from AWS for %d regions", len(fetched.quotes), len(wanted))
    return fetched.quotes


@task(cache_policy=NO_CACHE)
def plan_queue(
    queue: Queue,
    forecasts: dict[str, Served],
    now: datetime,
    spot_quotes: list[PriceQuote] | None = None,
) -> list[Plan]:
    series = {key: s.series for key, s in forecasts.items()}
    catalog = default_catalog().with_spot_quotes(spot_quotes or [])
    plans = plan_jobs(queue.jobs, series, now=now, catalog=catalog)
    return plans + [refused(e) for e in queue.errors]


@task(cache_policy=NO_CACHE)
def publish_plan_artifacts(
    plans: list[Plan],
    scheduled: dict[str, Scheduled],
    forecasts: dict[str, Served],
    jobs: list[JobSpec],
) -> None:
    create_table_artifact(
        plan_rows(plans, scheduled),
        key=PLAN_TABLE_KEY,
        description="carbonshift plan: one row per job",
    )
    if len(plans) > PER_JOB_ARTIFACTS_UP_TO:
        create_markdown_artifact(
            plans_markdown(plans, scheduled),
            key=PLAN_EXPLANATIONS_KEY,
            description=f"why each slot, {len(plans)} jobs",
        )
        return
    regions_of = {j.name: j.regions for j in jobs}
    for plan in plans:
        chart_key = None
        slots = placed(plan)
        if slots:
            shown: dict[str, IntensitySeries] = {}
            for key in regions_of.get(plan.job) or [s.region for s in alternatives(plan)]:
                key = default_catalog().region(key).key
                if key in forecasts and forecasts[key].series.source != "static":
                    shown[key] = forecasts[key].series
            if shown:
                chart_key = artifact_key("plan-chart", plan.job)
                create_image_artifact(
                    svg_data_url(
                        plan_chart_svg(shown, slots[0], title=f"{plan.job}: forecast per region")
                    ),
                    key=chart_key,
                    description=f"forecast per candidate region, {plan.job}",
                )
        create_markdown_artifact(
            plan_markdown(plan, scheduled.get(plan.job), chart_key),
            key=artifact_key("plan", plan.job),
            description=f"why this slot for {plan.job}",
        )
