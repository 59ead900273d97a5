"""Study tasks: the baseline study and the emissions report, computed in the core
(carbonshift.baseline, carbonshift.report) and published as artifacts."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_image_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from carbonshift import baseline, report
from carbonshift.artifacts import svg_data_url
from carbonshift.catalog import default_catalog
from carbonshift.checkpoint.store import open_store
from carbonshift.providers.factory import ForecastConfig
from carbonshift.run import ChainActuals
from carbonshift.series import IntensitySeries
from carbonshift.study_charts import baseline_heatmap_svg
from tasks.forecasts import chain_for

BASELINE_KEY = "baseline-study"
REPORT_KEY = "emissions-report"


@task(cache_policy=NO_CACHE)
def run_baseline(request: baseline.StudyRequest) -> baseline.BaselineStudy:
    result = baseline.run(request, default_catalog())
    get_run_logger().info("%s", baseline.headline(result))
    return result


@task(cache_policy=NO_CACHE)
def publish_baseline(result: baseline.BaselineStudy) -> None:
    """The hour x region table, the heat-map and the headline as artifacts."""
    clock = "UTC" if result.clock == "utc" else "local time"
    create_table_artifact(
        baseline.hour_rows(result),
        key=f"{BASELINE_KEY}-table",
        description=f"mean kg CO2 per run by start hour ({clock}) and region",
    )
    create_image_artifact(
        svg_data_url(baseline_heatmap_svg(result)),
        key=f"{BASELINE_KEY}-heatmap",
        description=f"emissions by start hour ({clock}) x region",
    )
    create_markdown_artifact(
        baseline.markdown(result, chart_key=f"{BASELINE_KEY}-heatmap"),
        key=BASELINE_KEY,
        description="baseline study: the best slot against the worst and the usual one",
    )


@task(cache_policy=NO_CACHE)
def load_report(
    store: str,
    since: datetime,
    until: datetime,
    traces: str | None,
    forecast: ForecastConfig | None = None,
    now: datetime | None = None,
) -> report.Report:
    """The ledger's period; with `forecast`, pending counterfactuals whose actual intensity the
    providers now have are settled (and written back) first. `now`: the clock that says which
    windows have passed (default: the wall clock)."""
    settle = None
    if forecast is not None:
        chain, catalog = chain_for(forecast), default_catalog()

        def settle(region: str, start_s: float, end_s: float) -> IntensitySeries | None:
            return ChainActuals(chain, catalog.region(region)).actuals(start_s, end_s)

    result = report.load(store, since, until, Path(traces) if traces else None, settle, now)
    get_run_logger().info(
        "%d run segments in %s from %s to %s", len(result.segments), result.ledger, since, until
    )
    return result


@task(cache_policy=NO_CACHE)
def store_report_files(result: report.Report, out: str, prefix: str) -> list[str]:
    """The markdown, CSV, JSON lines and chart, into the store `out` names under `prefix`."""
    store, _ = open_store(out, field="out")
    return report.put(result, store, prefix)


@task(cache_policy=NO_CACHE)
def publish_report(result: report.Report, files: list[str]) -> dict[str, Any]:
    """The report's markdown, its per-job table and its chart as artifacts; its JSON figures."""
    chart_key = None
    if not result.empty:
        chart_key = f"{REPORT_KEY}-chart"
        create_image_artifact(
            svg_data_url(report.chart_svg(result)),
            key=chart_key,
            description="kg CO2 per day against running at once in the home region",
        )
        create_table_artifact(
            report.job_rows(result),
            key=f"{REPORT_KEY}-table",
            description="per job: emissions, savings against run-now, share of possible, delay",
        )
    text = report.markdown(result, chart=f"artifact `{chart_key}`" if chart_key else None)
    if files:
        text += "\nFiles:\n\n" + "".join(f"- `{uri}`\n" for uri in files)
    create_markdown_artifact(text, key=REPORT_KEY, description="emissions report")
    return {**report.as_json(result), "files": files}
