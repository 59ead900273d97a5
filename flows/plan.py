"""Flow `plan-training`: plan the job queue against forecasts and schedule training runs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar, cast

from prefect import flow
from prefect.states import Failed
from prefect.utilities.annotations import opaque
from pydantic import Field

from carbonshift.artifacts import Scheduled
from carbonshift.config import PlanningConfig
from carbonshift.job import JobSpec
from carbonshift.spot_pricing import SpotPricing
from tasks.events import emit_plans_made
from tasks.planning import (
    fetch_forecasts,
    fetch_spot_prices,
    load_queue,
    plan_queue,
    publish_plan_artifacts,
)
from tasks.scheduling import schedule_runs

DEFAULT_QUEUE = "deployments/jobs.yaml"

# A job as given in the `jobs` parameter: a valid spec, or anything else, which the flow refuses
# on its own (job, field, fix) while it plans the rest, as the CLI does with a job file.
JobParameter = Annotated[JobSpec | Any, Field(union_mode="left_to_right")]


T = TypeVar("T")


def _opaque(value: T) -> T:
    """A task input Prefect resolves but does not walk into (typed as the value itself)."""
    return cast(T, opaque(value))


class SchedulingFailed(RuntimeError):
    """Some training runs could not be created; the plan artifacts say which and why."""


@flow(name="plan-training")
def plan_training(
    jobs: list[JobParameter] | None = None,
    queue_file: str | None = DEFAULT_QUEUE,
    config: PlanningConfig | None = None,
    now: datetime | None = None,
    spot_pricing: SpotPricing | None = None,
) -> list[Scheduled]:
    """Plan every job in the queue and schedule its training run at the chosen slot.

    A job that fails validation is refused (listed in the plan-summary artifact with its field
    and the fix) and the others are planned. If a training run cannot be created, the others are
    still scheduled and the run fails at the end, naming the jobs.

    Args:
        jobs: jobs to plan besides (or instead of) the queue file.
        queue_file: YAML job queue, relative to the project folder; empty for none.
        config: forecast providers, the training deployment and the routes to other pools'
            deployments by region.
        now: plan as of this moment (UTC); empty means now.
        spot_pricing: ask AWS for interruptible jobs' spot prices (needs
            ec2:DescribeSpotPriceHistory); empty or off means the catalog's. Either way each
            spot price in the plan says where it came from.
    """
    config = config or PlanningConfig()
    now = now or datetime.now(UTC)
    queue = load_queue(queue_file, jobs)
    # AWS's spot prices are asked for while the forecasts are fetched.
    quotes = fetch_spot_prices.submit(queue.jobs, now, spot_pricing)
    forecasts = fetch_forecasts(queue.jobs, now, config.forecast)
    # opaque: Prefect would otherwise walk every plan and job of a big queue on each task call
    # looking for futures (0.7 s per call at 1,000 plans); the task inputs are still recorded.
    plans = plan_queue(_opaque(queue), _opaque(forecasts), now, quotes.result())
    emit_plans_made(plans)
    scheduled = (
        schedule_runs(_opaque(plans), _opaque(queue.jobs), config) if config.schedule else {}
    )
    publish_plan_artifacts(
        _opaque(plans), _opaque(scheduled), _opaque(forecasts), _opaque(queue.jobs)
    )
    failed = [s for s in scheduled.values() if s.status == "failed"]
    if failed:
        raise SchedulingFailed(
            f"{len(failed)} of {len(scheduled)} training runs could not be created: "
            + "; ".join(f"{s.job}: {s.note}" for s in failed)
        )
    if queue.unreadable:
        # The given jobs are planned and scheduled; the run still fails, without a traceback,
        # so that a daily run whose queue vanished does not pass for one with nothing to do.
        # Prefect makes a returned state the run's state (and raises it to direct callers).
        return Failed(message=f"{queue.unreadable}: fix the path or the file")  # type: ignore[return-value]
    return list(scheduled.values())
