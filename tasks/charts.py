"""Chart tasks: a training run's forecast against the actual intensity, as an image artifact."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_image_artifact
from prefect.cache_policies import NO_CACHE

from carbonshift.artifacts import artifact_key, svg_data_url
from carbonshift.catalog import default_catalog
from carbonshift.charts import report_chart_svg
from carbonshift.config import TrainingConfig
from carbonshift.run import ChainActuals, Placement, RunReport
from carbonshift.run.grid import planned_series
from carbonshift.series import IntensitySeries
from tasks.forecasts import chain_for

RUN_CHART_PREFIX = "run-chart"


def run_actuals(report: RunReport, config: TrainingConfig) -> IntensitySeries | None:
    """The run region's actual intensity over the run, or None when no provider has it (the
    chart then says so; a missing actual never fails the run)."""
    if len(report.samples) < 2:
        return None
    start_s, end_s = report.samples[0].at_s, report.samples[-1].at_s
    try:
        region = default_catalog().region(report.region)
        actuals = ChainActuals(chain_for(config.forecast), region)
        return actuals.actuals(start_s, max(end_s, start_s + 1))
    except Exception as e:  # noqa: BLE001 - a chart without actuals beats no chart
        get_run_logger().warning("no actual intensity for the run chart: %s", e)
        return None


@task(cache_policy=NO_CACHE)
def publish_run_chart(
    report: RunReport, placement: Placement, config: TrainingConfig
) -> str | None:
    """The run chart as the `run-chart-<job>` image artifact; its key, or None without one."""
    # The plan's forecast is of the planned region: a run moved elsewhere for capacity is
    # charted without it rather than against another region's forecast.
    same_region = report.region == placement.slot.region
    planned = planned_series(placement.forecast) if same_region else None
    svg = report_chart_svg(report, planned, run_actuals(report, config))
    if svg is None:
        return None
    key = artifact_key(RUN_CHART_PREFIX, report.job)
    create_image_artifact(
        svg_data_url(svg),
        key=key,
        description=f"forecast vs actual intensity over the run of {report.job}",
    )
    return key
