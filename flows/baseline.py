"""Flow `baseline-study`: a job's emissions for every start hour of the recorded history, per
region; publishes the hour x region table, the heat-map and the headline (carbonshift.baseline).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from prefect import flow
from pydantic import Field

from carbonshift.baseline import Segment, StudyRequest
from tasks.studies import publish_baseline, run_baseline


@flow(name="baseline-study")
def baseline_study(
    regions: list[str] | None = None,
    energy_kwh: Annotated[float, Field(ge=0)] | None = None,
    duration_s: Annotated[float, Field(gt=0)] | None = None,
    segments: list[Segment] | None = None,
    ledger_record: str | None = None,
    store: str | None = None,
    traces: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    local_time: bool = False,
    signal: Literal["lca", "direct"] = "lca",
) -> dict[str, Any]:
    """The job's emissions for every whole-hour start, per region; the best slot against the
    worst and the usual one (the home region's median start).

    Args:
        regions: e.g. ["aws:eu-west-2", "aws:us-east-1"]; the first is home. With
            ledger_record, the record's region by default.
        energy_kwh: the job's energy, spread evenly over duration_s.
        duration_s: the job's length in seconds.
        segments: instead of energy_kwh and duration_s: stretches at constant power, in order.
        ledger_record: instead: the run id of a recorded run (its energy over its run time).
        store: the ledger's store (with ledger_record): a folder, s3:// or gs:// URI.
        traces: a folder of CSV traces named by zone; empty for the bundled 2023 traces.
        since: history from (UTC); empty for the traces' start.
        until: history until (exclusive); empty for the traces' end.
        local_time: hours of day in each region's local time instead of UTC.
        signal: lca or direct (the Electricity Maps column).
    """
    request = StudyRequest(
        regions=regions or [],
        energy_kwh=energy_kwh,
        duration_s=duration_s,
        segments=segments,
        ledger_record=ledger_record,
        store=store,
        traces=traces,
        since=since,
        until=until,
        local_time=local_time,
        signal=signal,
    )
    result = run_baseline(request)
    publish_baseline(result)
    return result.as_json()
