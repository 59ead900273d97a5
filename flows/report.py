"""Flow `emissions-report`: the run ledger over a period (default the last 14 days) as
markdown, table and chart artifacts, and the report's files (markdown, CSV, the period's JSON
lines, the chart) in the store (carbonshift.report). Deployed weekly (prefect.yaml)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from prefect import flow
from pydantic import Field

from carbonshift.providers.factory import ForecastConfig
from carbonshift.report import period
from tasks.studies import load_report, publish_report, store_report_files


@flow(name="emissions-report")
def emissions_report(
    store: Annotated[str, Field(min_length=1)],
    days: Annotated[float, Field(gt=0)] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    out: str | None = None,
    traces: str | None = None,
    now: datetime | None = None,
    forecast: ForecastConfig | None = None,
) -> dict[str, Any]:
    """Emitted kg, kg saved against running at once in the home region, the share of the
    possible savings and the delays, in total, per region and per job.

    Args:
        store: the ledger's store (the checkpoint store of the training runs): a folder,
            s3:// or gs:// URI.
        days: the last days up to `until`; empty for 14 (unless `since` is given).
        since: period from (UTC), instead of `days`.
        until: period until (exclusive); empty for now.
        out: where the files go (a folder or store URI); empty for `store`, under
            reports/<since>_<until>/. A period with no run writes none.
        traces: a folder of CSV traces of actual intensity, named by zone: pending
            counterfactuals they cover (run-now; best in hindsight once the deadline has
            passed) are completed in the report (and said so); empty for none.
        now: the clock (UTC); empty for now.
        forecast: where actual intensity comes from (the training runs' provider chain):
            pending counterfactuals whose actuals now exist are settled and written back to
            the ledger; empty for the default chain.
    """
    at = now or datetime.now(UTC)
    since, until = period(at, days, since, until)
    result = load_report(store, since, until, traces, forecast or ForecastConfig(), at)
    files: list[str] = []
    if not result.empty:
        files = store_report_files(
            result, out or store, f"reports/{since:%Y%m%dT%H%M}_{until:%Y%m%dT%H%M}"
        )
    return publish_report(result, files)
